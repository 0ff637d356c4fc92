"""The local scheduler: runs the declared jobs (shared/schedule.py) inside the dev server.

Each run calls the function itself, over the in-process gateway with the service
key, exactly as pg_cron + pg_net call it on a hosted project. A job never overlaps
itself (a run still going when the next is due makes that one skipped), and a
failing run is logged and the schedule goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from croniter import croniter
from starlette.types import ASGIApp

from shared.schedule import ScheduledJob
from shared.settings import Settings

log = logging.getLogger("connectgain.schedule")

Call = Callable[[ScheduledJob], Awaitable[Mapping[str, Any]]]
Clock = Callable[[], datetime]


class RunFailed(Exception):
    """A scheduled function answered something else than 200 and a JSON summary."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def next_run(job: ScheduledJob, after: datetime) -> datetime:
    """The first moment strictly after `after` that `job.cron` names."""
    moment: datetime = croniter(job.cron, after).get_next(datetime)
    return moment


def calling(app: ASGIApp, settings: Settings, *, timeout: float = 300.0) -> Call:
    """Runs a job by POSTing to its function on `app` (the gateway) with the service key."""
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {settings.service_key}"}

    async def call(job: ScheduledJob) -> Mapping[str, Any]:
        async with httpx.AsyncClient(
            transport=transport, base_url=settings.supabase_url, timeout=timeout
        ) as client:
            response = await client.post(f"/functions/v1/{job.slug}", headers=headers)
        if response.status_code != 200:
            raise RunFailed(f"HTTP {response.status_code}: {response.text[:500]}")
        summary: Mapping[str, Any] = response.json()
        return summary

    return call


class Scheduler:
    def __init__(
        self,
        jobs: Iterable[ScheduledJob],
        call: Call,
        *,
        clock: Clock = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.jobs = tuple(jobs)
        self.call, self.clock, self.sleep = call, clock, sleep
        start = clock()
        self.next_at = {job.slug: next_run(job, start) for job in self.jobs}
        self.running: dict[str, asyncio.Task[None]] = {}

    def tick(self, now: datetime | None = None) -> list[asyncio.Task[None]]:
        """Start every job that is due at `now`; returns the runs it started."""
        now = now or self.clock()
        started: list[asyncio.Task[None]] = []
        for job in self.jobs:
            if self.next_at[job.slug] > now:
                continue
            self.next_at[job.slug] = next_run(job, now)
            current = self.running.get(job.slug)
            if current is not None and not current.done():
                log.warning("schedule %s: the previous run is still going; skipped", job.slug)
                continue
            task = asyncio.create_task(self._run(job), name=f"schedule {job.slug}")
            self.running[job.slug] = task
            started.append(task)
        return started

    async def _run(self, job: ScheduledJob) -> None:
        try:
            summary = await self.call(job)
        except Exception as exc:
            log.error("schedule %s failed: %s", job.slug, exc, exc_info=exc)
            return
        log.info("schedule %s: %s", job.slug, json.dumps(summary, sort_keys=True))

    async def run(self) -> None:
        """Run the schedule until cancelled; then cancel the runs still going."""
        if not self.jobs:
            return
        try:
            while True:
                self.tick()
                wait = (min(self.next_at.values()) - self.clock()).total_seconds()
                await self.sleep(max(wait, 0.0))
        finally:
            for task in self.running.values():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*self.running.values(), return_exceptions=True)
