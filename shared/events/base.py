"""What a consumer of domain events is, and what the worker hands it.

A consumer fans an event out to delivery rows (one, or one per target such as
a webhook endpoint) inside the dispatch transaction, then handles claimed
deliveries outside any transaction and says how each went. Its `record` hook
writes what it learned (attempt logs, endpoint health) in the transaction that
records the outcomes, so both land together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal
from uuid import UUID

from shared.db import Connection
from shared.runtime import Runtime


@dataclass(frozen=True)
class Event:
    """A row of public.outbox_events."""

    id: int
    organization_id: UUID
    type: str
    aggregate_id: UUID | None
    payload: dict[str, Any]
    created_at: datetime
    # The chain of automation rules that caused it ({rules, depth}), if any.
    causation: dict[str, Any] | None = None


@dataclass(frozen=True)
class Claimed:
    """A delivery the worker holds under `claim` until its lease ends."""

    id: int
    consumer: str
    target: UUID | None
    attempt: int  # 1 for the first attempt (replays start over)
    claim: UUID
    event: Event


@dataclass(frozen=True)
class Result:
    """How one delivery went. done: finished; retry: try again on the consumer's
    schedule (dead when it is spent); dead: give up now; cancelled: nothing to do;
    released: not attempted (no time left in the lease), due again, not counted."""

    status: Literal["done", "retry", "dead", "cancelled", "released"]
    error: str | None = None
    # What the consumer's record hook needs (an attempt's log); the worker ignores it.
    detail: Any = None


def retry(error: str, detail: Any = None) -> Result:
    return Result("retry", error[:2000], detail)


def dead(error: str, detail: Any = None) -> Result:
    return Result("dead", error[:2000], detail)


def cancelled(error: str) -> Result:
    return Result("cancelled", error[:2000])


RELEASED = Result("released")


@dataclass(frozen=True)
class Recorded:
    """What the worker made of a result: the delivery's new state."""

    claimed: Claimed
    result: Result
    status: Literal["done", "pending", "dead", "cancelled"]
    due_at: datetime | None = None


@dataclass(frozen=True)
class Retries:
    """The waits between attempts: after attempt n fails, the n-th wait; once they
    are spent the delivery is dead."""

    waits: tuple[timedelta, ...]

    def next_due(self, *, attempt: int, now: datetime) -> datetime | None:
        if attempt > len(self.waits):
            return None
        return now + self.waits[attempt - 1]


@dataclass
class Consumer:
    """A consumer of domain events. Subclasses set `name` and override what they need."""

    name: ClassVar[str]
    # The event types it wants; None for every type.
    event_types: ClassVar[frozenset[str] | None] = None
    retries: Retries = field(
        default_factory=lambda: Retries(
            tuple(timedelta(seconds=s) for s in (10, 60, 300, 1800, 7200))
        )
    )

    def wants(self, event_type: str) -> bool:
        return self.event_types is None or event_type in self.event_types

    async def fan_out(
        self, *, conn: Connection, events: Sequence[Event]
    ) -> list[tuple[int, UUID | None]]:
        """(event id, target) rows to deliver, written in the dispatch transaction.
        By default one row, without a target, per event the consumer wants."""
        return [(e.id, None) for e in events if self.wants(e.type)]

    async def handle(
        self, *, runtime: Runtime, deliveries: Sequence[Claimed], now: datetime, deadline: float
    ) -> list[Result]:
        """One result per delivery, in their order; called outside any transaction.

        `deadline` (time.monotonic()) is when the lease ends: work not finished by then
        may be taken by another worker, so a delivery that cannot be done by then is
        RELEASED instead of started."""
        raise NotImplementedError

    async def record(
        self, *, conn: Connection, runtime: Runtime, outcomes: Sequence[Recorded], now: datetime
    ) -> None:
        """Writes what the consumer learned, in the transaction recording the outcomes."""
