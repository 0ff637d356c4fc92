"""Group commit in the process: concurrent callers' items share one call.

A caller's item leaves at once when fewer than `max_in_flight` calls are
running; otherwise it waits, and everything that arrived meanwhile leaves
together in the next call. Nothing waits on a timer, so an idle server adds no
latency, while a busy one makes fewer and larger database transactions: fewer
round trips, fewer commits for the WAL to flush.

The call is one transaction for the whole batch. If it fails, each item is run
again on its own, so a bad item fails only its own caller, and a deadlock
between two batches costs a retry, never a lost item.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger("connectgain.coalesce")

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_in_flight: int,
        max_batch: int,
    ) -> None:
        if max_in_flight < 1 or max_batch < 1:
            raise ValueError("max_in_flight and max_batch must be at least 1")
        self._run = run
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._in_flight < self._max_in_flight:
            self._start()
        return await future

    def _start(self) -> None:
        self._in_flight += 1
        task = asyncio.create_task(self._flush())
        self._tasks.add(task)  # held, so the loop cannot collect it mid-flight
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        try:
            while self._waiting:
                # Taken when the task runs, not when it was made: whatever arrived in
                # the same turn of the loop joins this call.
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                await self._deliver(batch)
        finally:
            self._in_flight -= 1

    async def _deliver(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        # A future already done is a caller that gave up (a dropped connection);
        # the work it asked for stands.
        try:
            results = await self._run([item for item, _ in batch])
        except asyncio.CancelledError:  # shutting down: nobody waits forever
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            if len(batch) > 1:
                log.info("a batch of %d failed (%s); running each alone", len(batch), exc)
                for one in batch:
                    await self._deliver([one])
            elif not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
