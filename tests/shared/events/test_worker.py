"""The events worker with a consumer of the test's own: fan-out once, leases, retries,
dead letters and replay, two workers at once. The clock is the worker's `now`."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar
from uuid import UUID

import pytest

from shared.db import Connection
from shared.events import letters, worker
from shared.events.base import Claimed, Consumer, Result, Retries, retry
from shared.runtime import Runtime
from tests.support import make_contact, make_org, make_user, member, principal

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class Probe(Consumer):
    """Answers each delivery with `answer` and remembers what it was handed."""

    name: ClassVar[str] = "probe"
    event_types: ClassVar[frozenset[str] | None] = frozenset({"contact.created"})

    def __init__(self, answer: Callable[[Claimed], Result] = lambda _: Result("done")) -> None:
        super().__init__(retries=Retries((timedelta(seconds=10), timedelta(seconds=60))))
        self.answer = answer
        self.seen: list[Claimed] = []

    async def handle(
        self, *, runtime: Runtime, deliveries: Sequence[Claimed], now: datetime, deadline: float
    ) -> list[Result]:
        await asyncio.sleep(0)  # let another worker run in between
        self.seen.extend(deliveries)
        return [self.answer(d) for d in deliveries]


@pytest.fixture
async def org(db: Connection) -> UUID:
    return await make_org(db, await make_user(db))


async def statuses(db: Connection) -> Counter[str]:
    rows = await db.fetch("select status from public.event_deliveries where consumer = 'probe'")
    return Counter(r["status"] for r in rows)


async def test_each_event_goes_once_to_each_consumer_that_wants_it(
    runtime: Runtime, db: Connection, org: UUID
):
    contacts = [await make_contact(db, org) for _ in range(3)]
    await db.execute("update public.contacts set name = 'Renamed' where id = $1", contacts[0])
    probe = Probe()
    summary = await worker.run(runtime, consumers=[probe], now=T0)
    assert summary.as_dict() == {
        "dispatched": 4,  # contact.updated too, which the probe does not want
        "deliveries": 3,
        "claimed": 3,
        "processed": 3,
        "failed": 0,
        "dead": 0,
        "cancelled": 0,
        "released": 0,
        "stale": 0,
    }
    assert {d.event.aggregate_id for d in probe.seen} == set(contacts)
    assert {d.event.type for d in probe.seen} == {"contact.created"}
    again = await worker.run(runtime, consumers=[probe], now=T0 + timedelta(hours=1))
    assert again.dispatched == again.claimed == 0
    assert len(probe.seen) == 3
    assert await db.fetchval("select count(*) from outbox_events where processed_at is null") == 0


async def test_two_workers_at_once_never_handle_the_same_delivery(
    runtime: Runtime, db: Connection, org: UUID
):
    for _ in range(40):
        await make_contact(db, org)
    first, second = Probe(), Probe()
    await asyncio.gather(
        worker.run(runtime, consumers=[first], limit=4, now=T0),
        worker.run(runtime, consumers=[second], limit=4, now=T0),
    )
    handled = Counter(d.id for d in [*first.seen, *second.seen])
    assert len(handled) == 40 and set(handled.values()) == {1}
    assert first.seen and second.seen  # both took part
    assert await statuses(db) == {"done": 40}


async def test_a_worker_dying_after_its_claim_leaves_the_delivery_to_the_next_after_the_lease(
    runtime: Runtime, db: Connection, org: UUID
):
    await make_contact(db, org)
    probe = Probe()
    _, (held,) = await worker.dispatch(runtime.db, consumers=[probe], limit=10, lease=60, now=T0)
    # ... and the worker dies here. While the lease holds, nobody takes the row:
    during = await worker.run(runtime, consumers=[probe], now=T0 + timedelta(seconds=59))
    assert during.claimed == 0 and probe.seen == []
    after = await worker.run(runtime, consumers=[probe], now=T0 + timedelta(seconds=61))
    assert after.processed == 1
    assert [(d.id, d.attempt) for d in probe.seen] == [(held.id, 2)]
    # The dead worker's late outcome changes nothing: its claim is gone.
    late = worker._settle(probe, held, retry("late"), T0 + timedelta(seconds=62))
    written = await worker.record(
        runtime, consumers={"probe": probe}, outcomes=[late], now=T0 + timedelta(seconds=62)
    )
    assert written == set()
    assert await statuses(db) == {"done": 1}


async def test_failures_back_off_then_land_in_the_dead_letters_and_replay_starts_over(
    runtime: Runtime, db: Connection, org: UUID
):
    await make_contact(db, org)
    failing = Probe(lambda d: retry(f"receiver down (attempt {d.attempt})"))
    assert (await worker.run(runtime, consumers=[failing], now=T0)).failed == 1
    due = await db.fetchval("select due_at from public.event_deliveries where consumer = 'probe'")
    assert due == T0 + timedelta(seconds=10)
    assert (
        await worker.run(runtime, consumers=[failing], now=T0 + timedelta(seconds=9))
    ).claimed == 0
    assert (
        await worker.run(runtime, consumers=[failing], now=T0 + timedelta(seconds=10))
    ).failed == 1
    last = await worker.run(runtime, consumers=[failing], now=T0 + timedelta(seconds=70))
    assert (last.claimed, last.dead) == (1, 1)
    assert [d.attempt for d in failing.seen] == [1, 2, 3]

    admin, agent = await member(db, org, "admin"), await member(db, org, "agent")
    async with runtime.db.user_tx(principal(admin)) as conn:
        (letter,) = await letters.dead_letters(
            conn=conn, organization_id=org, before=None, limit=10
        )
    assert letter["last_error"] == "receiver down (attempt 3)"
    assert (letter["event_type"], letter["attempts"], letter["status"]) == (
        "contact.created",
        3,
        "dead",
    )
    async with runtime.db.user_tx(principal(agent)) as conn:  # RLS: admins only
        assert (
            await letters.dead_letters(conn=conn, organization_id=org, before=None, limit=9) == []
        )

    async with runtime.db.user_tx(principal(admin)) as conn:
        replayed = await letters.replay(conn=conn, delivery_id=letter["id"])
    assert (replayed["status"], replayed["attempts"]) == ("pending", 0)
    healed = Probe()
    later = datetime.now(UTC) + timedelta(seconds=1)  # the replay is due from the database's now
    assert (await worker.run(runtime, consumers=[healed], now=later)).processed == 1
    assert [d.attempt for d in healed.seen] == [1]


async def test_a_consumer_that_raises_fails_its_batch_for_a_retry_and_the_run_goes_on(
    runtime: Runtime, db: Connection, org: UUID
):
    await make_contact(db, org)

    def broken(_: Claimed) -> Result:
        raise RuntimeError("bug in the consumer")

    summary = await worker.run(runtime, consumers=[Probe(broken)], now=T0)
    assert (summary.claimed, summary.failed) == (1, 1)
    error = await db.fetchval("select last_error from public.event_deliveries")
    assert error == "RuntimeError: bug in the consumer"


@pytest.mark.parametrize(
    ("sql", "args", "index"),
    [
        (worker.DISPATCH, (100,), "outbox_events_pending_idx"),
        (worker.CLAIM, (T0, ["webhooks"], 100, 60.0), "event_deliveries_due_idx"),
    ],
)
async def test_the_claims_read_the_partial_index_of_what_they_filter_on(
    db: Connection, sql: str, args: tuple[object, ...], index: str
):
    async with db.transaction():
        await db.execute("set local enable_seqscan = off")
        plan = await db.fetchval(f"explain (format json) {sql}", *args)
    assert index in str(plan)
