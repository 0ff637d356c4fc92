"""What the events worker has finished with, deleted once it is old enough.

A processed event older than `events_retention_days` goes, with its deliveries,
their webhook attempts and the automation runs it caused (on delete cascade, each
found by an index leading with the parent's id), unless one of its deliveries is
still pending, finished within that age, or is a dead letter younger than
`dead_letter_retention_days` (replaying one makes it pending again, so it stays
until then).

A batch reads the next `events_retention_batch` old events on the processed-time
index from a cursor (private.events_retention_cursor), deletes those it may, and
moves the cursor past all of them: events kept are stepped over, so however many
there are, every run makes progress. A walk that reaches the end starts again
from the oldest. One run at a time (a session advisory lock); each batch is its
own short transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.db import Database
from shared.settings import Settings

LOCK = 0x6576_7265_7465  # "evrete": one events-retention run at a time

_BATCH = """
with cursor as (
  select coalesce((select c.processed_at from private.events_retention_cursor c), '-infinity')
           as processed_at,
         coalesce((select c.event_id from private.events_retention_cursor c), 0) as event_id
), candidates as (
  select e.id, e.processed_at from public.outbox_events e, cursor
   where e.processed_at is not null and e.processed_at < $1
     and (e.processed_at, e.id) > (cursor.processed_at, cursor.event_id)
   order by e.processed_at, e.id
   limit $3
), doomed as (
  select c.id from candidates c
   where not exists (
     select 1 from public.event_deliveries d
      where d.event_id = c.id
        and (d.status = 'pending'
             or d.finished_at >= case when d.status = 'dead' then $2 else $1 end))
), gone as (
  delete from public.outbox_events e using doomed where e.id = doomed.id returning 1
), last as (
  select c.processed_at, c.id from candidates c order by c.processed_at desc, c.id desc limit 1
)
select (select count(*) from candidates) as seen, (select count(*) from gone) as deleted,
       last.processed_at, last.id
  from (select 1) one left join last on true
"""

_MOVE = """
insert into private.events_retention_cursor (processed_at, event_id) values ($1, $2)
on conflict (singleton) do update set processed_at = excluded.processed_at,
                                      event_id = excluded.event_id
"""


async def purge(db: Database, *, settings: Settings, now: datetime) -> dict[str, int]:
    """Deletes old finished events, a bounded number of batches; how many, in how many."""
    done_before = now - timedelta(days=settings.events_retention_days)
    dead_before = now - timedelta(days=settings.dead_letter_retention_days)
    batch, deleted, batches = settings.events_retention_batch, 0, 0
    async with db.service_conn() as conn:
        if not await conn.fetchval("select pg_try_advisory_lock($1)", LOCK):
            return {"deleted": 0, "batches": 0}  # another run is at it
        try:
            while batches < settings.events_retention_max_batches:
                async with conn.transaction():
                    row = await conn.fetchrow(_BATCH, done_before, dead_before, batch)
                    assert row is not None
                    if row["seen"] < batch:  # the end: the next walk starts from the oldest
                        await conn.execute("delete from private.events_retention_cursor")
                    else:
                        await conn.execute(_MOVE, row["processed_at"], row["id"])
                deleted, batches = deleted + row["deleted"], batches + 1
                if row["seen"] < batch:
                    break
        finally:
            await conn.execute("select pg_advisory_unlock($1)", LOCK)
    return {"deleted": deleted, "batches": batches}
