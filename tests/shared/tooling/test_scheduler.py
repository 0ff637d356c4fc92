"""The local scheduler: a due job runs the real function (its effect is in the
database), a job not due does not run, a job never overlaps itself, a failing run
is logged and the schedule goes on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from croniter import croniter

from shared.db import Connection
from shared.runtime import Runtime
from shared.schedule import SCHEDULE, ScheduledJob
from shared.tooling.gateway import Gateway
from shared.tooling.scheduler import RunFailed, Scheduler, calling
from tests.support import make_conversation, make_org, make_user

START = datetime(2026, 12, 2, 12, 0, 30, tzinfo=UTC)
EVERY_MINUTE = ScheduledJob("outbound-sweep", "* * * * *", "sweep")
NIGHTLY = ScheduledJob("inbound-retry", "0 3 * * *", "retry")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def stuck_message(db: Connection) -> Any:
    """An outbound message left `queued` an hour ago: its server died before the call."""
    org = await make_org(db, await make_user(db))
    conversation = await make_conversation(db, org)
    return await db.fetchval(
        "insert into messages (organization_id, conversation_id, channel_account_id, direction,"
        " sender_type, body, status, created_at)"
        " select organization_id, id, channel_account_id, 'outbound', 'user', 'hi', 'queued',"
        " now() - interval '1 hour' from conversations where id = $1 returning id",
        conversation,
    )


async def test_the_local_scheduler_runs_a_due_job_and_not_one_that_is_not_due(
    runtime: Runtime, db: Connection, caplog: pytest.LogCaptureFixture
):
    message = await stuck_message(db)
    gateway = Gateway(runtime.settings, runtime=runtime)
    clock = Clock(START)
    scheduler = Scheduler([EVERY_MINUTE, NIGHTLY], calling(gateway, runtime.settings), clock=clock)

    assert scheduler.tick(START + timedelta(seconds=20)) == [], "nothing due before 12:01"
    assert await db.fetchval("select status::text from messages where id = $1", message) == "queued"

    caplog.set_level(logging.INFO, logger="connectgain.schedule")
    runs = scheduler.tick(START + timedelta(seconds=30))  # 12:01:00
    assert [t.get_name() for t in runs] == ["schedule outbound-sweep"]
    await asyncio.gather(*runs)
    row = await db.fetchrow("select status::text, error ->> 'code' as code from messages")
    assert row["status"] == "failed"
    assert 'schedule outbound-sweep: {"failed": 1, "unknown": 0}' in caplog.messages
    assert scheduler.next_at == {
        "outbound-sweep": datetime(2026, 12, 2, 12, 2, tzinfo=UTC),
        "inbound-retry": datetime(2026, 12, 3, 3, 0, tzinfo=UTC),
    }


async def test_a_job_never_overlaps_itself_and_a_failure_does_not_stop_the_schedule(
    caplog: pytest.LogCaptureFixture,
):
    release = asyncio.Event()
    calls: list[str] = []

    async def call(job: ScheduledJob) -> Mapping[str, Any]:
        calls.append(job.slug)
        if len(calls) == 1:
            await release.wait()
            raise RunFailed("HTTP 500: boom")
        return {"processed": 0}

    scheduler = Scheduler([EVERY_MINUTE], call, clock=Clock(START))
    first = scheduler.tick(START + timedelta(minutes=1))
    await asyncio.sleep(0)
    assert scheduler.tick(START + timedelta(minutes=2)) == [], "the first run is still going"
    assert calls == ["outbound-sweep"]
    assert "schedule outbound-sweep: the previous run is still going; skipped" in caplog.messages

    release.set()
    await asyncio.gather(*first)
    assert "schedule outbound-sweep failed: HTTP 500: boom" in caplog.messages
    caplog.set_level(logging.INFO, logger="connectgain.schedule")
    await asyncio.gather(*scheduler.tick(START + timedelta(minutes=3)))
    assert calls == ["outbound-sweep", "outbound-sweep"]
    assert 'schedule outbound-sweep: {"processed": 0}' in caplog.messages


async def test_run_sleeps_until_the_next_due_moment():
    clock = Clock(START)
    waits: list[float] = []
    ran: list[datetime] = []

    async def call(job: ScheduledJob) -> Mapping[str, Any]:
        ran.append(clock.now)
        return {}

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)  # the runs just started go first
        waits.append(seconds)
        if len(waits) == 3:
            raise asyncio.CancelledError
        clock.now += timedelta(seconds=seconds)

    with pytest.raises(asyncio.CancelledError):
        await Scheduler([EVERY_MINUTE], call, clock=clock, sleep=sleep).run()
    assert waits == [30.0, 60.0, 60.0]
    assert ran == [START + timedelta(seconds=30), START + timedelta(seconds=90)]


async def test_the_gateway_runs_its_schedule_while_it_serves(runtime: Runtime, db: Connection):
    """Started by the server's lifespan, every second here (croniter's sixth field)."""
    message = await stuck_message(db)
    job = ScheduledJob("outbound-sweep", "* * * * * *", "every second")
    gateway = Gateway(runtime.settings, runtime=runtime, schedule=[job])
    sent: list[dict[str, Any]] = []
    startup: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    serving = asyncio.create_task(gateway({"type": "lifespan"}, startup.get, send))  # type: ignore[arg-type]
    status = "queued"
    for _ in range(40):
        await asyncio.sleep(0.1)
        status = await db.fetchval("select status::text from messages where id = $1", message)
        if status != "queued":
            break
    await startup.put({"type": "lifespan.shutdown"})
    await serving
    assert status == "failed"
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.parametrize("job", SCHEDULE, ids=[job.slug for job in SCHEDULE])
async def test_each_scheduled_function_needs_the_service_key_and_answers_a_summary(
    client: httpx.AsyncClient, runtime: Runtime, job: ScheduledJob
):
    assert croniter.is_valid(job.cron) and len(job.cron.split()) == 5, "pg_cron's syntax"
    url = f"/functions/v1/{job.slug}"
    assert (await client.post(url)).status_code == 401
    user = runtime.settings.local_key("anon")
    assert (await client.post(url, headers={"Authorization": f"Bearer {user}"})).status_code == 401
    answer = await client.post(
        url, headers={"Authorization": f"Bearer {runtime.settings.service_key}"}
    )
    assert answer.status_code == 200
    summary = answer.json()
    assert isinstance(summary, dict) and summary
    assert all(isinstance(v, int) for v in summary.values())


@pytest.mark.parametrize(("flags", "expected"), [((), SCHEDULE), (("--no-schedule",), ())])
def test_serve_runs_the_declared_schedule(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: tuple[str, ...],
    expected: tuple[ScheduledJob, ...],
):
    import uvicorn

    from shared.tooling import cli

    served: list[Gateway] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: served.append(app))
    monkeypatch.setattr(cli, "_log_schedule_runs", lambda: None)
    assert cli.main(["serve", *flags]) == 0
    assert served[0].schedule == expected
    printed = capsys.readouterr().out
    assert ("* * * * *    inbound-retry" in printed) == bool(expected)
