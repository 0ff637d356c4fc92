"""What the events worker has finished with, deleted once it is old enough.

A processed event older than `events_retention_days` goes, with its deliveries,
their webhook attempts and the automation runs it caused (on delete cascade, each
found by an index leading with the parent's id), unless one of its deliveries is
still pending, finished within that age, or is a dead letter younger than
`dead_letter_retention_days` (replaying one makes it pending again, so it is kept
until then). Batches walk the processed-time index oldest first, each its own
short transaction with FOR UPDATE SKIP LOCKED, so runs never wait on each other.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.db import Database
from shared.settings import Settings

_BATCH = """
with doomed as (
  select e.id from public.outbox_events e
   where e.processed_at is not null and e.processed_at < $1
     and not exists (
       select 1 from public.event_deliveries d
        where d.event_id = e.id
          and (d.status = 'pending'
               or d.finished_at >= case when d.status = 'dead' then $2 else $1 end))
   order by e.processed_at
   limit $3
     for update of e skip locked
), gone as (
  delete from public.outbox_events e using doomed where e.id = doomed.id returning 1
)
select count(*) from gone
"""


async def purge(db: Database, *, settings: Settings, now: datetime) -> dict[str, int]:
    """Deletes old finished events in batches; how many, and in how many batches."""
    done_before = now - timedelta(days=settings.events_retention_days)
    dead_before = now - timedelta(days=settings.dead_letter_retention_days)
    batch, deleted, batches = settings.events_retention_batch, 0, 0
    while batches < settings.events_retention_max_batches:
        async with db.service_tx() as conn:
            gone: int = await conn.fetchval(_BATCH, done_before, dead_before, batch)
        deleted, batches = deleted + gone, batches + 1
        if gone < batch:
            break
    return {"deleted": deleted, "batches": batches}
