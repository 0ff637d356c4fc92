"""Whether any bot could act on an organization's inbound messages, cached in the process.

The question: an enabled, published flow with triggers, or a live session. The answer
lives TTL seconds. This process forgets an organization's answer when it changes the
organization's flows or starts a session there (`forget`); a change made by another
process is seen within TTL, and the events worker's `bots` consumer, which asks the
database itself, handles what a stale "no" let pass.
"""

from __future__ import annotations

import asyncio
import time
from uuid import UUID

from shared.runtime import Runtime

TTL = 1.0  # seconds an organization's answer is kept
MAX_KNOWN = 10_000  # organizations kept; past this, all are forgotten

HAS_BOTS = """
select exists (select 1 from public.bot_flows f
                where f.organization_id = $1 and f.enabled
                  and f.published_version_id is not null and f.triggers <> '[]'::jsonb)
    or exists (select 1 from public.bot_sessions s
                where s.organization_id = $1 and s.status in ('active', 'waiting'))
"""

_known: dict[UUID, tuple[bool, float]] = {}  # organization → (answer, good until)
_asking: dict[UUID, asyncio.Task[bool]] = {}
_generation = 0  # moved by every forget: an answer read across one is not kept


def forget(organization_id: UUID) -> None:
    """The organization's flows or sessions changed in this process: ask again."""
    global _generation
    _generation += 1
    _known.pop(organization_id, None)


def known_without(organization_id: UUID) -> bool:
    """A fresh "no" is cached: the caller need not even schedule the bot pass."""
    known = _known.get(organization_id)
    return known is not None and not known[0] and known[1] > time.monotonic()


async def has_bots(runtime: Runtime, organization_id: UUID) -> bool:
    """One indexed query per organization and TTL at most, shared by concurrent callers."""
    known = _known.get(organization_id)
    if known is not None and known[1] > time.monotonic():
        return known[0]
    asking = _asking.get(organization_id)
    if asking is None:  # concurrent deliveries of one organization share one question
        asking = asyncio.ensure_future(_ask(runtime, organization_id))
        _asking[organization_id] = asking
        asking.add_done_callback(lambda _: _asking.pop(organization_id, None))
    return await asyncio.shield(asking)


async def _ask(runtime: Runtime, organization_id: UUID) -> bool:
    generation = _generation
    async with runtime.db.service_conn() as conn:
        answer = bool(await conn.fetchval(HAS_BOTS, organization_id))
    if generation == _generation:
        if len(_known) >= MAX_KNOWN:
            _known.clear()
        _known[organization_id] = (answer, time.monotonic() + TTL)
    return answer
