"""The bot step in the same pass as the message: run right after a webhook has answered.

The webhook's response is sent first (a background task of the response), then
`after_delivery` reads the inbound messages stored since this process last looked —
the pending `message.received` outbox events after a watermark, on the outbox's
pending index — and hands those a bot may act on to
`shared.bots.runtime.handle_message`, at most CONCURRENCY at a time per process.
Reads take turns (one watermark per process) and look MARGIN ids behind it, skipping
the ids already seen: concurrent webhook transactions commit out of id order, and one
that commits after a later one was read is still found. Handling does not wait for
other deliveries' handling, and a conversation's messages stay in order because the
handler takes the conversation's lock and handles every earlier message first. What
this misses (another process's messages, a crash, a commit further behind) the
events worker's `bots` consumer handles on its next tick; a message is handled once
either way.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from shared.bots.runtime import handle_message
from shared.db import Database
from shared.runtime import Runtime

log = logging.getLogger("connectgain.bots")
BATCH = 500
MARGIN = 1000  # outbox ids looked at again behind the watermark
CONCURRENCY = 32  # messages handled at once; each holds a pooled connection while it runs

NEW_MESSAGES = """
select e.id, e.organization_id, e.aggregate_id as message_id,
       exists (select 1 from public.bot_flows f
                where f.organization_id = e.organization_id and f.enabled
                  and f.published_version_id is not null and f.triggers <> '[]'::jsonb)
       or exists (select 1 from public.bot_sessions s
                   where s.conversation_id = (e.payload ->> 'conversation_id')::uuid
                     and s.status in ('active', 'waiting')) as wanted
  from public.outbox_events e
 where e.processed_at is null and e.id > $1 and e.event_type = 'message.received'
   and e.id <> all($3::bigint[])
 order by e.id limit $2
"""


@dataclass
class _Reader:
    watermark: int = 0
    seen: set[int] = field(default_factory=set)  # message.received ids within MARGIN
    reading: asyncio.Lock = field(default_factory=asyncio.Lock)
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CONCURRENCY))


_READERS: WeakKeyDictionary[Database, _Reader] = WeakKeyDictionary()


async def after_delivery(runtime: Runtime) -> None:
    """Bot steps for the messages stored since the last look; returns when they are
    handled. Never raises: the worker is the safety net."""
    reader = _READERS.setdefault(runtime.db, _Reader())
    try:
        rows = await _new(runtime, reader)
    except Exception:
        log.exception("reading new messages for bots failed; the events worker will handle them")
        return
    await asyncio.gather(*(_handle(runtime, reader, row) for row in rows if row["wanted"]))


async def _new(runtime: Runtime, reader: _Reader) -> list[Any]:
    found: list[Any] = []
    async with reader.reading:
        while True:
            low = reader.watermark - MARGIN
            reader.seen = {i for i in reader.seen if i > low}
            async with runtime.db.service_conn() as conn:
                rows = await conn.fetch(NEW_MESSAGES, low, BATCH, list(reader.seen))
            if not rows:
                return found
            reader.watermark = max(reader.watermark, rows[-1]["id"])
            reader.seen.update(r["id"] for r in rows)
            found += rows
            if len(rows) < BATCH:
                return found


async def _handle(runtime: Runtime, reader: _Reader, row: Any) -> None:
    async with reader.slots:
        try:
            await handle_message(
                runtime, organization_id=row["organization_id"], message_id=row["message_id"]
            )
        except Exception:
            log.exception("bot step failed for message %s", row["message_id"])
