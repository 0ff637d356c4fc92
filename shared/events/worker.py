"""The events worker: outbox events → per-consumer deliveries → consumers.

    dispatch  claim unprocessed outbox events (FOR UPDATE SKIP LOCKED), write one
              delivery row per (event, consumer, target), mark the events
              processed: one transaction, so a fan-out happens exactly once. The
              new rows are written already leased to this worker.
    claim     take due deliveries (SKIP LOCKED) and lease them in one statement:
              due_at moves to the lease's end and `claim` gets a fresh token;
              it commits at once, so no lock or transaction stays open while a
              consumer calls out.
    handle    each consumer handles its deliveries, concurrently.
    record    one transaction: the outcomes, written only where the claim still
              holds (a worker whose lease ran out, and whose row another worker
              took, changes nothing), and the consumers' own records.

A worker that dies between claim and record leaves its rows leased; when the
lease ends they are due again and another run takes them: nothing is lost, and
while a lease holds no other worker takes the row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared.db import Database
from shared.events.base import Claimed, Consumer, Event, Recorded, Result, retry
from shared.events.consumers import CONSUMERS
from shared.runtime import Runtime

log = logging.getLogger("connectgain.events")
LEASE_MARGIN_SECONDS = 2.0


@dataclass
class Summary:
    dispatched: int = 0  # outbox events fanned out
    deliveries: int = 0  # delivery rows they made
    claimed: int = 0
    processed: int = 0  # done
    failed: int = 0  # to be retried
    dead: int = 0
    cancelled: int = 0
    released: int = 0  # not attempted for lack of time in the lease; due again at once
    stale: int = 0  # outcomes dropped: the lease had run out and the row was taken again

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _event(row: Any) -> Event:
    return Event(
        id=row["event_id"],
        organization_id=row["organization_id"],
        type=row["event_type"],
        aggregate_id=row["aggregate_id"],
        payload=row["payload"],
        created_at=row["created_at"],
        causation=row["causation"],
    )


# The unprocessed events, oldest first (outbox_events_pending_idx).
DISPATCH = """
select id as event_id, organization_id, event_type, aggregate_id, payload, created_at,
       causation
  from public.outbox_events
 where processed_at is null
 order by id
 limit $1
   for update skip locked
"""

# Due deliveries leased in one statement (event_deliveries_due_idx).
CLAIM = """
with due as (
  select id from public.event_deliveries
   where status = 'pending' and due_at <= $1 and consumer = any($2::text[])
   order by due_at
   limit $3
     for update skip locked
)
update public.event_deliveries d
   set due_at = $1::timestamptz + make_interval(secs => $4), claim = gen_random_uuid(),
       attempts = d.attempts + 1
  from due, public.outbox_events e
 where d.id = due.id and e.id = d.event_id
returning d.id, d.consumer, d.target, d.attempts, d.claim, d.event_id,
          e.organization_id, e.event_type, e.aggregate_id, e.payload, e.created_at, e.causation
"""


async def dispatch(
    db: Database, *, consumers: Sequence[Consumer], limit: int, lease: float, now: datetime
) -> tuple[int, list[Claimed]]:
    """Fans out up to `limit` outbox events; (events, their deliveries). The deliveries
    are written already leased to this worker (a claim saved), to be handled at once."""
    async with db.service_tx() as conn:
        rows = await conn.fetch(DISPATCH, limit)
        if not rows:
            return 0, []
        events = {r["event_id"]: _event(r) for r in rows}
        fanned: list[tuple[int, str, UUID | None]] = []
        for consumer in consumers:
            for event_id, target in await consumer.fan_out(conn=conn, events=[*events.values()]):
                fanned.append((event_id, consumer.name, target))
        made = []
        if fanned:
            made = await conn.fetch(
                """
                insert into public.event_deliveries
                       (organization_id, event_id, consumer, target, attempts, claim, due_at)
                select o, e, c, t, 1, gen_random_uuid(), $5::timestamptz + make_interval(secs => $6)
                  from unnest($1::uuid[], $2::bigint[], $3::text[], $4::uuid[]) u(o, e, c, t)
                on conflict do nothing
                returning id, event_id, consumer, target, attempts, claim
                """,
                [events[e].organization_id for e, _, _ in fanned],
                [e for e, _, _ in fanned],
                [c for _, c, _ in fanned],
                [t for _, _, t in fanned],
                now,
                lease,
            )
        await conn.execute(
            "update public.outbox_events set processed_at = $2 where id = any($1::bigint[])",
            list(events),
            now,
        )
    return len(events), [_claimed(r, events[r["event_id"]]) for r in made]


def _claimed(row: Any, event: Event) -> Claimed:
    return Claimed(
        id=row["id"],
        consumer=row["consumer"],
        target=row["target"],
        attempt=row["attempts"],
        claim=row["claim"],
        event=event,
    )


async def claim(
    db: Database, *, consumers: Sequence[Consumer], limit: int, lease: float, now: datetime
) -> list[Claimed]:
    """Leases up to `limit` due deliveries of these consumers, committed at once."""
    async with db.service_conn() as conn:
        rows = await conn.fetch(
            CLAIM,
            now,
            [c.name for c in consumers],
            limit,
            lease,
        )
    return [_claimed(r, _event(r)) for r in rows]


async def _handle(
    runtime: Runtime, consumer: Consumer, deliveries: list[Claimed], now: datetime, deadline: float
) -> list[Result]:
    try:
        results = await consumer.handle(
            runtime=runtime, deliveries=deliveries, now=now, deadline=deadline
        )
    except Exception as exc:  # a consumer's bug fails its batch, to be retried; never the run
        log.exception("consumer %s failed", consumer.name)
        return [retry(f"{type(exc).__name__}: {exc}")] * len(deliveries)
    if len(results) != len(deliveries):
        return [retry(f"consumer {consumer.name} answered {len(results)} results")] * len(
            deliveries
        )
    return results


def _settle(consumer: Consumer, claimed: Claimed, result: Result, now: datetime) -> Recorded:
    if result.status == "done":
        return Recorded(claimed, result, "done")
    if result.status == "cancelled":
        return Recorded(claimed, result, "cancelled")
    if result.status == "released":
        return Recorded(claimed, result, "pending", now)
    if result.status == "retry":
        due = consumer.retries.next_due(attempt=claimed.attempt, now=now)
        if due is not None:
            return Recorded(claimed, result, "pending", due)
    return Recorded(claimed, result, "dead")


async def record(
    runtime: Runtime,
    *,
    consumers: dict[str, Consumer],
    outcomes: list[Recorded],
    now: datetime,
) -> set[int]:
    """Writes the outcomes still held by their claims; the ids written."""
    async with runtime.db.service_tx() as conn:
        rows = await conn.fetch(
            """
            update public.event_deliveries d
               set status = u.status, due_at = coalesce(u.due_at, d.due_at), claim = null,
                   last_error = case when u.refund = 1 then d.last_error else u.error end,
                   attempts = d.attempts - u.refund,
                   finished_at = case when u.status = 'pending' then null else $6::timestamptz end
              from unnest($1::bigint[], $2::uuid[], $3::text[], $4::timestamptz[], $5::text[],
                          $7::int[]) u(id, claim, status, due_at, error, refund)
             where d.id = u.id and d.claim = u.claim
            returning d.id
            """,
            [o.claimed.id for o in outcomes],
            [o.claimed.claim for o in outcomes],
            [o.status for o in outcomes],
            [o.due_at for o in outcomes],
            [o.result.error for o in outcomes],
            now,
            [int(o.result.status == "released") for o in outcomes],
        )
        held = {r["id"] for r in rows}
        by_consumer: dict[str, list[Recorded]] = defaultdict(list)
        for outcome in outcomes:
            if outcome.claimed.id in held:
                by_consumer[outcome.claimed.consumer].append(outcome)
        for name, mine in by_consumer.items():
            await consumers[name].record(conn=conn, runtime=runtime, outcomes=mine, now=now)
    return held


async def process(
    runtime: Runtime,
    *,
    consumers: Sequence[Consumer],
    claimed: list[Claimed],
    now: datetime,
    deadline: float,
) -> tuple[list[Recorded], int]:
    """Handles claimed deliveries and records them; (recorded outcomes, stale ones)."""
    if not claimed:
        return [], 0
    named = {c.name: c for c in consumers}
    groups: dict[str, list[Claimed]] = defaultdict(list)
    for delivery in claimed:
        groups[delivery.consumer].append(delivery)
    answers = await asyncio.gather(
        *(_handle(runtime, named[name], batch, now, deadline) for name, batch in groups.items())
    )
    outcomes = [
        _settle(named[name], delivery, result, now)
        for (name, batch), results in zip(groups.items(), answers, strict=True)
        for delivery, result in zip(batch, results, strict=True)
    ]
    held = await record(runtime, consumers=named, outcomes=outcomes, now=now)
    recorded = [o for o in outcomes if o.claimed.id in held]
    return recorded, len(outcomes) - len(recorded)


async def run(
    runtime: Runtime,
    *,
    consumers: Sequence[Consumer] = CONSUMERS,
    limit: int | None = None,
    now: datetime | None = None,
) -> Summary:
    """Batches of dispatch and delivery until nothing is due or the run's time is up.

    `now` fixes the clock (tests move it forward instead of sleeping)."""
    settings = runtime.settings
    limit = limit or settings.events_batch_size
    lease = settings.events_lease_seconds
    summary = Summary()
    run_ends = time.monotonic() + settings.events_run_seconds
    while True:
        at = now or datetime.now(UTC)
        # The batch's lease ends a little before the database's, for the clocks' sake.
        deadline = time.monotonic() + lease - LEASE_MARGIN_SECONDS
        db = runtime.db
        events, fresh = await dispatch(db, consumers=consumers, limit=limit, lease=lease, now=at)
        # Retries due meanwhile always get a share of the batch.
        due_limit = max(limit - len(fresh), limit // 4, 1)
        due = await claim(db, consumers=consumers, limit=due_limit, lease=lease, now=at)
        recorded, stale = await process(
            runtime, consumers=consumers, claimed=[*fresh, *due], now=at, deadline=deadline
        )
        summary.dispatched += events
        summary.deliveries += len(fresh)
        summary.claimed += len(fresh) + len(due)
        summary.stale += stale
        for outcome in recorded:
            if outcome.status == "done":
                summary.processed += 1
            elif outcome.result.status == "released":
                summary.released += 1
            elif outcome.status == "pending":
                summary.failed += 1
            elif outcome.status == "dead":
                summary.dead += 1
            else:
                summary.cancelled += 1
        if (events < limit and len(due) < due_limit) or time.monotonic() > run_ends:
            return summary
