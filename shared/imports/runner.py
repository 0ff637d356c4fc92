"""Running CSV import jobs: planned once, then written by batches on two connections.

A job is run right after its upload answers (a background task of the upload
request) and, should that process die, by `import-runner` (cron, every minute),
which takes pending jobs and running ones whose runner has been silent longer
than LEASE_SECONDS.

First the whole file is planned in one transaction (shared/imports/plan.py: rows
matched, duplicates grouped, groups put in batches that share no record and no
key), committed with the number of batches in the job's progress. Then WORKERS
connections take batches from one queue and write them (shared/imports/merge.py),
each batch in one transaction that also adds its counts to the job's progress:
a crash loses at most the batches under way, whose rows are still in the plan, and
the next runner writes them again. Every batch commits and is broadcast
(`import.progress`). That is also why batches commit with `synchronous_commit`
off: a commit lost in a crash is a batch written again, never half a batch.

A cancel is checked before each batch: what earlier batches wrote stays (their
counts are in the job's report), nothing of the rest is written. When the job
ends, staged rows are deleted except the rejected ones, which the error report
(`rejected_csv`) streams with their reasons.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from shared.db import Connection
from shared.imports import jobs, plan
from shared.imports.merge import Merger
from shared.imports.spec import OUTCOMES, as_counts
from shared.runtime import Runtime

log = logging.getLogger("connectgain.imports")

CHUNK_ROWS = 20_000  # rows of a batch (new rows: its lines)
WORKERS = 2  # connections writing batches at once
LEASE_SECONDS = 120
_LOST = "The staged rows are gone (the database restarted during the import); upload the file again"

_CLAIM = f"""
update public.import_jobs j
   set status = 'running', updated_at = now(), started_at = coalesce(j.started_at, now())
 where j.id = (
   select id from public.import_jobs
    where source = 'csv' and ($1::uuid is null or id = $1)
      and (status = 'pending'
           or (status = 'running' and updated_at < now() - interval '{LEASE_SECONDS} seconds'))
    order by created_at limit 1 for update skip locked)
returning j.id, j.organization_id, j.entity, j.options, j.progress, j.cancel_requested
"""


async def run_job(runtime: Runtime, job_id: UUID) -> bool:
    """Run one job if it waits (or its runner died); False when another runner has it."""
    async with runtime.db.service_tx() as conn:
        job = await conn.fetchrow(_CLAIM, job_id)
    if job is None:
        return False
    await _run(runtime, dict(job))
    return True


async def run_pending(runtime: Runtime, *, seconds: float) -> dict[str, int]:
    """Run waiting jobs one after another for up to `seconds` (the cron's entry)."""
    deadline = time.monotonic() + seconds
    done: Counter[str] = Counter()
    while time.monotonic() < deadline:
        async with runtime.db.service_tx() as conn:
            job = await conn.fetchrow(_CLAIM, None)
        if job is None:
            break
        done[await _run(runtime, dict(job))] += 1
    return {status: done.get(status, 0) for status in ("completed", "cancelled", "failed")}


async def _run(runtime: Runtime, job: dict[str, Any]) -> str:
    try:
        return await _merge_all(runtime, job)
    except Exception as exc:  # a bug or an outage: fail the job rather than retry it forever
        log.exception("import %s failed", job["id"])
        async with runtime.db.service_tx() as conn:
            await jobs.finish(
                conn=conn,
                organization_id=job["organization_id"],
                job_id=job["id"],
                status="failed",
                progress=dict(job["progress"]),
                error={"code": "internal_error", "message": type(exc).__name__},
            )
        return "failed"


async def _merge_all(runtime: Runtime, job: dict[str, Any]) -> str:
    options, progress = job["options"], dict(job["progress"])
    org, job_id = job["organization_id"], job["id"]
    total = options.get("rows", 0)
    async with runtime.db.service_tx() as conn:
        if total and not await conn.fetchval(
            "select exists (select 1 from private.import_rows where job_id = $1)", job_id
        ):
            await jobs.finish(
                conn=conn,
                organization_id=org,
                job_id=job_id,
                status="failed",
                progress=progress,
                error={"code": "staged_rows_lost", "message": _LOST},
            )
            return "failed"
        if "batches" not in progress:  # not planned yet (a resumed job was)
            # the job's row locked while planning: the cron's claim skips it however long
            await conn.execute("select 1 from public.import_jobs where id = $1 for update", job_id)
            await _setup(conn, job_id)
            batches, planned = await plan.plan(
                conn=conn,
                job_id=job_id,
                organization_id=org,
                entity=job["entity"],
                keys=options["match"],
                companies=options.get("companies", False),
                batch_rows=CHUNK_ROWS,
                # a job an earlier runner merged by chunks of lines up to its checkpoint
                from_line=progress.get("next_line", 0),
            )
            progress = {k: progress.get(k, 0) for k in OUTCOMES[:-1]} | {
                "processed": total - planned,
                "total": total,
                "batches": batches,
            }
            await conn.execute(
                "update public.import_jobs set progress = $2, updated_at = now() where id = $1",
                job_id,
                progress,
            )
    if total > CHUNK_ROWS:  # a batch's rows are read by (job, batch): statistics for it
        async with runtime.db.service_tx() as conn:
            await conn.execute("analyze private.import_plan")
    queue = deque(range(plan.TANGLED, progress["batches"]))
    cancelled = False

    async def write() -> None:
        nonlocal cancelled
        while queue and not cancelled:
            batch = queue.popleft()
            async with runtime.db.service_tx() as conn:
                if await conn.fetchval(
                    "select cancel_requested from public.import_jobs where id = $1", job_id
                ):
                    cancelled = True
                    return
                await _setup(conn, job_id)
                merger = Merger(
                    conn=conn,
                    job_id=job_id,
                    organization_id=org,
                    entity=job["entity"],
                    mode=options["dedupe"],
                    keys=options["match"],
                    tag_ids=[UUID(t) for t in options.get("tag_ids", [])],
                )
                await merger.merge(batch)
                if merger.rows:
                    await _add_progress(conn, org, job_id, merger.counts, merger.rows)

    # Batches share no record and no key (the plan's promise): they are written at once.
    async with asyncio.TaskGroup() as writers:
        for _ in range(WORKERS):
            writers.create_task(write())
    async with runtime.db.service_tx() as conn:
        await _finish(conn, job, "cancelled" if cancelled else "completed")
    return "cancelled" if cancelled else "completed"


async def _setup(conn: Connection, job_id: UUID) -> None:
    await jobs.mark_transaction(conn=conn, job_id=job_id)
    # A batch whose commit a crash loses is written again from the plan; JIT compiling
    # a batch's statements costs more than it saves.
    await conn.execute("set local synchronous_commit = off; set local jit = off")


async def _add_progress(
    conn: Connection, org: UUID, job_id: UUID, counts: Counter[str], rows: int
) -> None:
    """The batch's counts added to the job's, in the batch's transaction (the row lock
    orders the writers; it is held only from here to the commit)."""
    progress = dict(
        await conn.fetchval(
            "select progress from public.import_jobs where id = $1 for update", job_id
        )
    )
    for name, n in counts.items():
        progress[name] = progress.get(name, 0) + n
    progress["processed"] = progress.get("processed", 0) + rows
    await jobs.report_progress(conn=conn, organization_id=org, job_id=job_id, progress=progress)


async def _finish(conn: Connection, job: dict[str, Any], status: str) -> None:
    job_id, org = job["id"], job["organization_id"]
    progress = await conn.fetchval(
        "select progress from public.import_jobs where id = $1 for update", job_id
    )
    left = await conn.fetchval("select count(*) from private.import_plan where job_id = $1", job_id)
    rejected = await conn.fetchval(
        "select count(*) from private.import_rows where job_id = $1 and error is not null",
        job_id,
    )
    await conn.execute(
        "delete from private.import_rows where job_id = $1 and error is null", job_id
    )
    await conn.execute("delete from private.import_plan where job_id = $1", job_id)
    total = job["options"].get("rows", 0)
    counts = Counter({k: progress.get(k, 0) for k in OUTCOMES[:-1]})
    report = as_counts(counts, int(rejected)) | {"processed": total - int(left), "total": total}
    await jobs.finish(
        conn=conn,
        organization_id=org,
        job_id=job_id,
        status="completed" if status == "completed" else "cancelled",
        progress=report,
        report=report,
    )


async def rejected_csv(
    conn: Connection, *, job_id: UUID, organization_id: UUID, columns: list[str]
) -> AsyncIterator[bytes]:
    """The rejected rows as CSV (UTF-8): their line, their fields as read, the reason.
    `conn` must be in a transaction (a cursor streams the rows)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["line", *columns, "error"])
    async for row in conn.cursor(
        "select line, raw, error from private.import_rows"
        " where job_id = $1 and organization_id = $2 and error is not null order by line",
        job_id,
        organization_id,
    ):
        writer.writerow([row["line"], *row["raw"], row["error"]])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
