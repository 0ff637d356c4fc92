"""The CSV import runner's edges: a job another runner holds, a failure mid-merge, and
an error report longer than one streamed chunk."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from shared.db import Connection
from shared.imports import plan, runner
from shared.runtime import Runtime
from tests.shared.imports.csv_support import (
    contacts_of,
    org_and_owner,
    rejected_report,
    run_import,
    stage,
)
from tests.support import module_runtime_fixtures

runtime, db = module_runtime_fixtures()
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("csv_runner")]


async def staged(runtime: Runtime, db: Connection, data: bytes) -> dict[str, Any]:
    return await stage(runtime, *await org_and_owner(db), data)


async def test_a_job_another_runner_holds_is_left_to_it(runtime: Runtime, db: Connection) -> None:
    job = await staged(runtime, db, b"Email\nada@example.com\n")
    await db.execute("update import_jobs set status = 'running' where id = $1", job["id"])
    assert not await runner.run_job(runtime, job["id"])  # its lease is fresh
    assert await contacts_of(db, job["organization_id"]) == []
    # once the lease ends, the job is anyone's
    await db.execute(
        "update import_jobs set updated_at = now() - interval '1 hour' where id = $1", job["id"]
    )
    assert await runner.run_job(runtime, job["id"])
    assert [c["email"] for c in await contacts_of(db, job["organization_id"])] == [
        "ada@example.com"
    ]


async def test_a_failure_mid_merge_fails_the_job_and_writes_nothing(
    runtime: Runtime, db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(**kwargs: Any) -> tuple[int, int]:
        raise RuntimeError("a bug in the plan")

    monkeypatch.setattr(plan, "plan", broken)
    job = await staged(runtime, db, b"Email\nada@example.com\nbob@example.com\n")
    assert await runner.run_job(runtime, job["id"])
    row = await db.fetchrow("select status, error from import_jobs where id = $1", job["id"])
    assert row["status"] == "failed"
    assert row["error"] == {"code": "internal_error", "message": "RuntimeError"}
    assert await contacts_of(db, job["organization_id"]) == []
    # a failed job is not taken again
    assert not await runner.run_job(runtime, job["id"])


async def test_a_long_error_report_streams_every_rejected_row(
    runtime: Runtime, db: Connection
) -> None:
    org, owner = await org_and_owner(db)
    bad = [f"not-an-address-{i}-{'x' * 60}" for i in range(1500)]  # > 64 KB of report
    data = ("Email\n" + "".join(f"{e}\n" for e in bad) + "ada@example.com\n").encode()
    job = await run_import(runtime, org, owner, data)
    assert (job["report"]["created"], job["report"]["rejected"]) == (1, 1500)
    report = await rejected_report(db, job)
    assert len(report) > 64 * 1024
    rows = list(csv.reader(io.StringIO(report)))
    assert rows[0] == ["line", "Email", "error"]
    assert [(r[0], r[1]) for r in rows[1:]] == [(str(i + 2), e) for i, e in enumerate(bad)]
    assert all(r[2].startswith("email: ") for r in rows[1:])
