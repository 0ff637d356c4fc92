"""Each process's sends of an account held within its cap where the provider counts
them: over any one second of requests written to the socket.

The shared slots (shared/campaigns/rate.py) spread an account's sends over the
dispatchers, but a send leaves a while after its slot: on a busy event loop the way
from a slot through the HTTP client to the socket takes from a millisecond to a
fifth of a second, and sends admitted within the cap over a second can reach the
provider bunched. So the window counts writes, not admissions. Every attempt of a
provider call (retries included) takes a `Place` (the provider client's `Turn`),
admitted from httpcore's trace just before the request's first byte is written (the
HTTP client's own work and the event loop's delays come before it), and only if

    (sends written within the last SPAN) + (sends admitted, not yet written) < cap

It is pending until stamped: when its request's last byte was handed to the socket
(the trace again), or when the attempt ended if no write was reported (a connection
never made) - either way no earlier than the write. A transport that reports nothing
(a mock) is not paced, only counted at the attempt's end.

Why no SPAN of writes ever holds more than the cap: take the sends written in a span
[t, t + SPAN) and L among them the last admitted, at a_L. L is written after its
admission, so a_L < t + SPAN. Every other send Y of the span was admitted by a_L:
either it was still pending then (counted), or it was already stamped, at s_Y with
a_L ≥ s_Y ≥ (its write) ≥ t > a_L - SPAN, so it was in L's window (counted). L was
admitted with fewer than the cap counted, so the span holds at most the cap.
SPAN is a second and a little: the provider stamps a request when it reads it, a
moment after our write (ARRIVAL), so any second of arrivals is within a SPAN of writes.
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

# Allowed between our socket write and the provider reading the request (loopback here;
# the slots' spacing, shared/campaigns/rate.py SCHEDULE_SHARE, leaves room for it).
ARRIVAL = timedelta(seconds=0.01)
SPAN = timedelta(seconds=1) + ARRIVAL
# The window's cap is this much under the provider's, so that a request delayed on its
# way more than its neighbours (100,000 sends at 200/s: one second of arrivals held 201)
# does not tip a second of arrivals over: at 200/s that takes ~25 ms of uneven delay, not 10.
HEADROOM = 0.01


@dataclass
class Clock:
    """Time for the rate cap; tests pass their own to move it without sleeping."""

    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep

    async def until(self, when: datetime) -> None:
        wait = (when - self.now()).total_seconds()
        if wait > 0:
            await self.sleep(wait)


class Window:
    """One account's sends in this process: written within the last SPAN, and pending."""

    _all: ClassVar[dict[UUID, Window]] = {}

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.written: deque[datetime] = deque()  # stamps, oldest first
        self.pending = 0
        self.due = 0  # sends whose slot has come, not yet made (the dispatcher counts them)
        self._stamped = asyncio.Event()
        # Sends waiting for a place, first come, first served. One task (the pump) waits
        # for places and admits as many queued sends as fit at once: admissions do not
        # pass from task to task, one event-loop turn each, which a busy loop at
        # hundreds of sends a second cannot afford.
        self.queue: deque[asyncio.Future[None]] = deque()
        self.pump: asyncio.Task[None] | None = None

    @staticmethod
    def cap_of(rate: float) -> int:
        return max(1, math.floor(rate * (1 - HEADROOM)))

    @classmethod
    def of(cls, channel_account_id: UUID, rate: float) -> Window:
        window = cls._all.get(channel_account_id)
        if window is None or window.cap != cls.cap_of(rate):
            window = cls._all[channel_account_id] = cls(cls.cap_of(rate))
        return window

    def admit(self, now: datetime) -> float | None:
        """0.0: a send at `now` is admitted (and pending until stamped). Else what to
        wait for: seconds until enough written sends have left the window, or None: a
        pending send's stamp (only a stamped send's time can run out)."""
        while self.written and self.written[0] <= now - SPAN:
            self.written.popleft()
        over = len(self.written) + self.pending - self.cap
        if over < 0:
            self.pending += 1
            return 0.0
        if over < len(self.written):
            return (self.written[over] + SPAN - now).total_seconds()
        return None

    def stamp(self, at: datetime) -> None:
        """A pending send was written (or its attempt ended) at `at`."""
        self.pending -= 1
        if self.written and at < self.written[-1]:  # another clock's stamp, a moment later
            bisect.insort(self.written, at)
        else:
            self.written.append(at)
        stamped, self._stamped = self._stamped, asyncio.Event()
        stamped.set()

    async def stamped(self) -> None:
        """Until the next stamp."""
        await self._stamped.wait()


class Place:
    """One attempt's place in a window (shared.channels.http.Turn)."""

    def __init__(self, pace: Pace) -> None:
        self.pace, self.admitted, self.stamped = pace, False, False

    async def admit(self) -> None:
        if not self.admitted:
            await self.pace.wait()
            self.admitted = True

    def written(self) -> None:
        if self.admitted and not self.stamped:
            self.stamped = True
            self.pace.window.stamp(self.pace.clock.now())


@dataclass(frozen=True)
class Pace:
    """A dispatcher's pacer of one account (shared.channels.http.Pacer): its window,
    on its clock."""

    window: Window
    clock: Clock

    async def wait(self) -> None:
        """Until a send may be admitted (then it is, pending)."""
        window = self.window
        if not window.queue and window.admit(self.clock.now()) == 0:
            return
        loop = asyncio.get_running_loop()
        admitted = loop.create_future()
        window.queue.append(admitted)
        pump = window.pump
        if pump is None or pump.done() or pump.get_loop() is not loop:
            window.pump = asyncio.create_task(self._pump())
        try:
            await admitted
        except asyncio.CancelledError:
            if not admitted.cancelled():
                window.pending -= 1  # admitted as it was cancelled: not a send after all
            elif window.pump is not None and all(f.done() for f in window.queue):
                window.pump.cancel()  # nobody left to wait for
            raise

    async def _pump(self) -> None:
        """Admit queued sends in order while places are free; wait for the next place."""
        window = self.window
        while window.queue:
            if window.queue[0].done():  # its send was cancelled while queued
                window.queue.popleft()
                continue
            wait = window.admit(self.clock.now())
            if wait == 0:
                window.queue.popleft().set_result(None)
            elif wait is None:
                await window.stamped()
            else:
                await self.clock.until(self.clock.now() + timedelta(seconds=wait))

    @asynccontextmanager
    async def attempt(self) -> AsyncIterator[Place]:
        place = Place(self)
        try:
            yield place
        finally:
            if not place.admitted:  # its transport reported nothing (a mock): counted
                self.window.pending += 1
                place.admitted = True
            place.written()  # no write reported: the attempt's end, surely no earlier
