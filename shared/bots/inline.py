"""The bot step in the same pass as the message: run right after a webhook has answered.

The webhook's response is sent first (a background task of the response), then
`after_delivery` reads the inbound messages stored since this process last looked —
the pending `message.received` outbox events, on the outbox's pending index — and
hands those a bot may act on to `shared.bots.runtime.handle_message`. One pass runs
at a time per process; deliveries arriving meanwhile ask for one more pass and wait
for it, so 200 concurrent webhooks make a few passes, not 200. Conversations are
handled concurrently, each one's messages in order. What this misses (another
process, a crash) the events worker's `bots` consumer handles on its next tick; a
message is handled once either way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID
from weakref import WeakKeyDictionary

from shared.bots.runtime import handle_message
from shared.db import Database
from shared.runtime import Runtime

log = logging.getLogger("connectgain.bots")
BATCH = 500
CONCURRENCY = 32  # conversations at once; each holds a pooled connection while it runs

NEW_MESSAGES = """
select e.id, e.organization_id, e.aggregate_id as message_id,
       (e.payload ->> 'conversation_id')::uuid as conversation_id,
       exists (select 1 from public.bot_flows f
                where f.organization_id = e.organization_id and f.enabled
                  and f.published_version_id is not null and f.triggers <> '[]'::jsonb)
       or exists (select 1 from public.bot_sessions s
                   where s.conversation_id = (e.payload ->> 'conversation_id')::uuid
                     and s.status in ('active', 'waiting')) as wanted
  from public.outbox_events e
 where e.processed_at is null and e.id > $1 and e.event_type = 'message.received'
 order by e.id limit $2
"""


@dataclass
class _Drain:
    watermark: int = 0
    again: bool = False
    task: asyncio.Task[None] | None = None
    waiting: list[asyncio.Future[None]] = field(default_factory=list)


_DRAINS: WeakKeyDictionary[Database, _Drain] = WeakKeyDictionary()


async def after_delivery(runtime: Runtime) -> None:
    """Bot steps for what the webhooks stored; returns once a pass that began after this
    call has finished. Never raises: the worker is the safety net."""
    drain = _DRAINS.setdefault(runtime.db, _Drain())
    drain.again = True
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    drain.waiting.append(done)
    if drain.task is None or drain.task.done():
        drain.task = asyncio.create_task(_run(runtime, drain))
    await asyncio.shield(done)


async def _run(runtime: Runtime, drain: _Drain) -> None:
    while drain.again:
        drain.again = False
        waiting, drain.waiting = drain.waiting, []
        try:
            while await _pass(runtime, drain) >= BATCH:
                pass
        except Exception:
            log.exception("the inline bot pass failed; the events worker will handle the rest")
        for future in waiting:
            if not future.done():
                future.set_result(None)


async def _pass(runtime: Runtime, drain: _Drain) -> int:
    async with runtime.db.service_conn() as conn:
        rows = await conn.fetch(NEW_MESSAGES, drain.watermark, BATCH)
    if not rows:
        return 0
    drain.watermark = max(drain.watermark, rows[-1]["id"])
    by_conversation: dict[UUID, list[Any]] = defaultdict(list)
    for row in rows:
        if row["wanted"]:
            by_conversation[row["conversation_id"]].append(row)
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(messages: list[Any]) -> None:
        async with slots:
            for row in messages:
                try:
                    await handle_message(
                        runtime,
                        organization_id=row["organization_id"],
                        message_id=row["message_id"],
                    )
                except Exception:
                    log.exception("bot step failed for message %s", row["message_id"])

    await asyncio.gather(*(one(m) for m in by_conversation.values()))
    return len(rows)
