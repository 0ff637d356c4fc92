"""An import's job row: created by an admin, moved along by its runner.

Every importer (CSV, Kommo) keeps its state in one `import_jobs` row. Admins
create jobs and ask for a cancel under RLS; the runner, as the service, claims
pending jobs, reports progress (broadcast as `import.progress` on the
organization's Realtime topic, so the SPA shows it live), checks for a cancel
between chunks, and finishes the job with its report.
"""

from __future__ import annotations

import json
from typing import Any, Literal
from uuid import UUID

from shared.db import Connection, fetch_found
from shared.errors import Conflict

Source = Literal["csv", "kommo"]
Entity = Literal["contacts", "companies"]
JobStatus = Literal["pending", "running", "completed", "failed", "cancelled"]

_COLUMNS = (
    "id, organization_id, source, entity, status, options, progress, report, error,"
    " cancel_requested, created_by, started_at, finished_at, created_at, updated_at"
)


async def create_job(
    *,
    conn: Connection,
    organization_id: UUID,
    source: Source,
    entity: Entity | None,
    options: dict[str, Any],
    created_by: UUID | None,
    job_id: UUID | None = None,
) -> dict[str, Any]:
    """`job_id`: an id chosen beforehand (the CSV import stages its rows under it first)."""
    row = await conn.fetchrow(
        "insert into public.import_jobs (id, organization_id, source, entity, options, created_by)"
        f" values (coalesce($6, gen_random_uuid()), $1, $2, $3, $4, $5) returning {_COLUMNS}",
        organization_id,
        source,
        entity,
        options,
        created_by,
        job_id,
    )
    assert row is not None
    return dict(row)


async def get_job(*, conn: Connection, job_id: UUID) -> dict[str, Any]:
    return await fetch_found(
        conn, "import job", f"select {_COLUMNS} from public.import_jobs where id = $1", job_id
    )


async def list_jobs(
    *, conn: Connection, organization_id: UUID, limit: int = 50
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"select {_COLUMNS} from public.import_jobs where organization_id = $1"
        " order by created_at desc, id limit $2",
        organization_id,
        limit,
    )
    return [dict(r) for r in rows]


async def request_cancel(*, conn: Connection, job_id: UUID) -> None:
    """Ask the runner to stop (under the admin's RLS). A finished job is a 409."""
    if not await conn.fetchval("select app.request_import_cancel($1)", job_id):
        await get_job(conn=conn, job_id=job_id)  # 404 when it isn't the caller's
        raise Conflict("the import has already finished")


async def start(*, conn: Connection, job_id: UUID) -> bool:
    """Pending → running, as the service; False when the job was cancelled first."""
    status = await conn.fetchval(
        "update public.import_jobs"
        " set status = case when cancel_requested then 'cancelled' else 'running' end,"
        "     started_at = now(), updated_at = now(),"
        "     finished_at = case when cancel_requested then now() end"
        " where id = $1 and status = 'pending' returning status",
        job_id,
    )
    return bool(status == "running")


async def report_progress(
    *, conn: Connection, organization_id: UUID, job_id: UUID, progress: dict[str, Any]
) -> bool:
    """Store and broadcast the counts so far; False when a cancel was asked for."""
    row = await conn.fetchrow(
        "update public.import_jobs set progress = $3, updated_at = now()"
        " where id = $2 and organization_id = $1 returning status, cancel_requested",
        organization_id,
        job_id,
        progress,
    )
    assert row is not None
    await _broadcast(conn, organization_id, job_id, row["status"], progress)
    return row["cancel_requested"] is False


async def finish(
    *,
    conn: Connection,
    organization_id: UUID,
    job_id: UUID,
    status: Literal["completed", "failed", "cancelled"],
    progress: dict[str, Any],
    report: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "update public.import_jobs set status = $3, progress = $4, report = $5, error = $6,"
        " finished_at = now(), updated_at = now() where id = $2 and organization_id = $1",
        organization_id,
        job_id,
        status,
        progress,
        report,
        error,
    )
    await _broadcast(conn, organization_id, job_id, status, progress)


async def mark_transaction(*, conn: Connection, job_id: UUID) -> None:
    """Every event the transaction writes carries the import as its causation, so
    automation rules leave imported rows alone (outbound webhooks still send them)."""
    await conn.execute(
        "select set_config('app.causation', $1, true)", json.dumps({"import": str(job_id)})
    )


async def _broadcast(
    conn: Connection, organization_id: UUID, job_id: UUID, status: str, progress: dict[str, Any]
) -> None:
    await conn.execute(
        "select realtime.send($1::jsonb, 'import.progress', $2, true)",
        {"job_id": str(job_id), "status": status, "progress": progress},
        f"org:{organization_id}:inbox",
    )
