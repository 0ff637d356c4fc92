"""The bot step in the same pass as the message: run right after a webhook has answered.

The webhook's response is sent first (a background task of the response), then
`after_delivery` takes the inbound messages of that delivery — its account and the
provider ids it parsed — and hands them to `shared.bots.inbound.handle_inbound`, at
most CONCURRENCY at a time per process. An organization without bots pays one
question, answered from the process's cache almost always (`shared.bots.gate`): a
"no" skips everything else; a "yes" lets each message check its own conversation as
it takes the conversation's lock. What this misses (a stale "no", another process's
messages, a crash) the events worker's `bots` consumer handles on its next tick; a
message is handled once either way (`private.bot_handled_messages`, under the
conversation's lock), and a conversation's messages in order.
"""

from __future__ import annotations

import asyncio
import logging
from weakref import WeakKeyDictionary

from shared.bots.gate import has_bots
from shared.bots.inbound import handle_inbound
from shared.channels.base import Account
from shared.db import Database
from shared.runtime import Runtime

log = logging.getLogger("connectgain.bots")
CONCURRENCY = 32  # messages handled at once; each holds a pooled connection while it runs
_SLOTS: WeakKeyDictionary[Database, asyncio.Semaphore] = WeakKeyDictionary()


async def after_delivery(runtime: Runtime, *, account: Account, inbound: tuple[str, ...]) -> None:
    """Bot steps for a delivery's inbound messages; returns when they are handled.
    Never raises: the worker is the safety net."""
    if not inbound:
        return
    try:
        if not await has_bots(runtime, account.organization_id):
            return
    except Exception:
        log.exception("asking for bots failed; the events worker will handle the messages")
        return
    await asyncio.gather(*(_handle(runtime, account, provider_id) for provider_id in inbound))


async def _handle(runtime: Runtime, account: Account, provider_id: str) -> None:
    slots = _SLOTS.setdefault(runtime.db, asyncio.Semaphore(CONCURRENCY))
    async with slots:
        try:
            await handle_inbound(runtime, account=account, provider_message_id=provider_id)
        except Exception:
            log.exception("bot step failed for message %s", provider_id)
