"""An import job's life: admins create and cancel under RLS, the runner moves it as the
service, and each step is broadcast on the organization's topic."""

from __future__ import annotations

import asyncpg
import pytest

from shared.db import Connection
from shared.errors import Conflict, NotFound
from shared.imports import jobs
from shared.runtime import Runtime
from tests.support import make_org, make_user, member
from tests.support import principal as user


async def _broadcasts(db: Connection, topic: str) -> list[dict[str, object]]:
    rows = await db.fetch(
        "select payload from realtime.messages where topic = $1 and event = 'import.progress'"
        " order by inserted_at, id",
        topic,
    )
    return [r["payload"] for r in rows]


async def test_admins_create_agents_cannot_and_the_runner_reports(
    runtime: Runtime, db: Connection
) -> None:
    owner = await make_user(db)
    org = await make_org(db, owner)
    agent = await member(db, org, "agent")
    async with runtime.db.user_tx(user(agent)) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await jobs.create_job(
                conn=conn,
                organization_id=org,
                source="csv",
                entity="contacts",
                options={},
                created_by=agent,
            )
    async with runtime.db.user_tx(user(owner)) as conn:
        job = await jobs.create_job(
            conn=conn,
            organization_id=org,
            source="csv",
            entity="contacts",
            options={"dedupe": "skip"},
            created_by=owner,
        )
        # users never write status or progress
        assert (
            await conn.fetch(
                "update import_jobs set status = 'completed' where id = $1 returning id", job["id"]
            )
            == []
        )
    assert job["status"] == "pending" and job["options"] == {"dedupe": "skip"}

    assert await jobs.start(conn=db, job_id=job["id"])
    assert not await jobs.start(conn=db, job_id=job["id"])  # only a pending job starts
    assert await jobs.report_progress(
        conn=db, organization_id=org, job_id=job["id"], progress={"rows": 10}
    )
    async with runtime.db.user_tx(user(owner)) as conn:
        await jobs.request_cancel(conn=conn, job_id=job["id"])
    # the runner learns of the cancel at its next report, then stops
    assert not await jobs.report_progress(
        conn=db, organization_id=org, job_id=job["id"], progress={"rows": 20}
    )
    await jobs.finish(
        conn=db,
        organization_id=org,
        job_id=job["id"],
        status="cancelled",
        progress={"rows": 20},
    )
    async with runtime.db.user_tx(user(owner)) as conn:
        stored = await jobs.get_job(conn=conn, job_id=job["id"])
        assert [j["id"] for j in await jobs.list_jobs(conn=conn, organization_id=org)] == [
            job["id"]
        ]
        with pytest.raises(Conflict):
            await jobs.request_cancel(conn=conn, job_id=job["id"])
    assert (stored["status"], stored["progress"]) == ("cancelled", {"rows": 20})
    assert stored["finished_at"] is not None
    assert [b["progress"] for b in await _broadcasts(db, f"org:{org}:inbox")] == [
        {"rows": 10},
        {"rows": 20},
        {"rows": 20},
    ]


async def test_a_job_cancelled_before_it_starts_never_runs(
    runtime: Runtime, db: Connection
) -> None:
    owner = await make_user(db)
    org = await make_org(db, owner)
    async with runtime.db.user_tx(user(owner)) as conn:
        job = await jobs.create_job(
            conn=conn,
            organization_id=org,
            source="kommo",
            entity=None,
            options={},
            created_by=owner,
        )
        await jobs.request_cancel(conn=conn, job_id=job["id"])
    assert not await jobs.start(conn=db, job_id=job["id"])
    assert await db.fetchval("select status from import_jobs where id = $1", job["id"]) == (
        "cancelled"
    )
    stranger = await make_user(db)
    async with runtime.db.user_tx(user(stranger)) as conn:
        with pytest.raises(NotFound):
            await jobs.request_cancel(conn=conn, job_id=job["id"])
