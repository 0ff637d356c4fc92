"""Running a Kommo import job: resumable, idempotent, cancelable between pages.

A run reads the setup (setup.py), then each paged entity from its checkpoint
(`kommo_import_checkpoints`: the next page, or done). Every page is written,
its checkpoint moved and the progress reported in one transaction, so a run
that dies continues after the last page it committed, and nothing is written
twice. A re-run (a later job) asks Kommo only for what changed since the last
completed import started (`If-Modified-Since`) and updates what it imported
before through `import_external_refs`.

Kommo unavailable (after the client's retries) leaves the job running for the
next run; a refusal (a revoked token) or a bug fails it with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from shared.channels.answers import ProviderError
from shared.db import Connection
from shared.imports import jobs
from shared.imports.kommo import oauth, pages, setup
from shared.imports.kommo.client import KommoClient, TokenBucket
from shared.imports.kommo.pages import Context, PageResult
from shared.runtime import Runtime

log = logging.getLogger(__name__)

Writer = Callable[[Connection, Context, list[dict[str, Any]]], Awaitable[PageResult]]


def _notes(of: str) -> Writer:
    async def write(conn: Connection, ctx: Context, items: list[dict[str, Any]]) -> PageResult:
        return await pages.notes(conn, ctx, items, of=of)

    return write


# (checkpoint name, Kommo list, its _embedded key, extra query, writer), in dependency order
ENTITIES: tuple[tuple[str, str, str, dict[str, str], Writer], ...] = (
    ("companies", "companies", "companies", {}, pages.companies),
    ("contacts", "contacts", "contacts", {}, pages.contacts),
    ("leads", "leads", "leads", {"with": "contacts,loss_reason"}, pages.leads),
    ("lead_notes", "leads/notes", "notes", {}, _notes("leads")),
    ("contact_notes", "contacts/notes", "notes", {}, _notes("contacts")),
    ("company_notes", "companies/notes", "notes", {}, _notes("companies")),
    ("tasks", "tasks", "tasks", {}, pages.tasks),
)
SKIPPED_KEPT = 500
MAX_FAILURES = 10


class Lost(Exception):
    """Another runner took the job over (our lease ran out)."""


async def _since(conn: Connection, org: UUID, job: UUID) -> datetime | None:
    """When the last completed Kommo import of the organization started."""
    found: datetime | None = await conn.fetchval(
        "select max(started_at) from public.import_jobs where organization_id = $1"
        " and source = 'kommo' and status = 'completed' and id <> $2",
        org,
        job,
    )
    return found


async def _renew(conn: Connection, job: UUID, claim: UUID | None, lease: float) -> None:
    if claim is None:
        return
    held = await conn.fetchval(
        "update private.kommo_import_leases set lease_until = now() + $3 * interval '1 second'"
        " where job_id = $1 and claim = $2 returning true",
        job,
        claim,
        lease,
    )
    if not held:
        raise Lost


async def _record_page(
    conn: Connection, ctx: Context, entity: str, page: int, more: bool, result: PageResult
) -> None:
    await conn.execute(
        "insert into public.kommo_import_checkpoints as c"
        " (organization_id, job_id, entity, next_page, done, skipped, skipped_count)"
        " values ($1, $2, $3, $4, $5, $6, $7)"
        " on conflict (organization_id, job_id, entity) do update"
        " set next_page = excluded.next_page, done = excluded.done, updated_at = now(),"
        "     skipped_count = c.skipped_count + excluded.skipped_count,"
        "     skipped = case when jsonb_array_length(c.skipped) >= $8 then c.skipped"
        "                    else c.skipped || excluded.skipped end",
        ctx.org,
        ctx.job,
        entity,
        page + 1,
        not more,
        result.skipped[:SKIPPED_KEPT],
        len(result.skipped),
        SKIPPED_KEPT,
    )


def _add(progress: dict[str, Any], entity: str, result: PageResult) -> None:
    counts = progress.setdefault(entity, {"created": 0, "updated": 0, "skipped": 0})
    counts["created"] += result.created
    counts["updated"] += result.updated
    counts["skipped"] += len(result.skipped)


async def _end(
    conn: Connection,
    job: dict[str, Any],
    status: Literal["failed", "cancelled"],
    progress: dict[str, Any],
    error: dict[str, Any] | None = None,
) -> str:
    await jobs.finish(
        conn=conn,
        organization_id=job["organization_id"],
        job_id=job["id"],
        status=status,
        progress=progress,
        error=error,
    )
    return status


async def _fail(
    runtime: Runtime, job: dict[str, Any], progress: dict[str, Any], error: dict[str, Any]
) -> str:
    async with runtime.db.service_tx() as conn:
        return await _end(conn, job, "failed", progress, error)


async def run_kommo_import(
    *,
    runtime: Runtime,
    job_id: UUID,
    claim: UUID | None = None,
    lease_seconds: float = 120.0,
    deadline: float | None = None,
    bucket: TokenBucket | None = None,
) -> str:
    """Run (or continue) a Kommo import job; its status afterwards. `deadline`
    (time.monotonic()) stops it between pages, still running, for a later run to
    continue; `claim` is the runner's lease (cron), renewed with every page."""
    async with runtime.db.service_tx() as conn:
        job = await jobs.get_job(conn=conn, job_id=job_id)
        if job["source"] != "kommo":
            raise ValueError("not a Kommo import job")
        if job["status"] == "pending" and not await jobs.start(conn=conn, job_id=job_id):
            return "cancelled"
        if job["status"] not in ("pending", "running"):
            return str(job["status"])
        org = job["organization_id"]
        since = None if job["options"].get("full") else await _since(conn, org, job_id)
        # entity → the next page to read (None: done)
        done = {
            r["entity"]: None if r["done"] else r["next_page"]
            for r in await conn.fetch(
                "select entity, next_page, done from public.kommo_import_checkpoints"
                " where organization_id = $1 and job_id = $2",
                org,
                job_id,
            )
        }
    progress: dict[str, Any] = dict(job["progress"])
    ctx = Context(org=org, job=job_id)
    try:
        async with runtime.db.service_tx() as conn:
            connection = await oauth.fresh_token(runtime, conn, organization_id=org)
        if connection is None:
            return await _fail(
                runtime,
                job,
                progress,
                {"code": "kommo_not_connected", "message": "Connect a Kommo account first"},
            )
        subdomain, token = connection
        client = KommoClient(
            http=runtime.http,
            settings=runtime.settings,
            subdomain=subdomain,
            token=token,
            bucket=bucket or TokenBucket(),
        )
        found = await setup.read(client)
        async with runtime.db.service_tx() as conn:
            await _renew(conn, job_id, claim, lease_seconds)
            await jobs.mark_transaction(conn=conn, job_id=job_id)
            summary = await setup.apply(conn, ctx, found)
            progress.update(summary["counts"])
            if not await jobs.report_progress(
                conn=conn, organization_id=org, job_id=job_id, progress=progress
            ):
                return await _end(conn, job, "cancelled", progress)
        for name, path, key, params, write in ENTITIES:
            if name in done and done[name] is None:
                continue
            async for page, items, more in client.pages(
                path, key, start=done.get(name) or 1, params=params, since=since
            ):
                async with runtime.db.service_tx() as conn:
                    await _renew(conn, job_id, claim, lease_seconds)
                    await jobs.mark_transaction(conn=conn, job_id=job_id)
                    result = await write(conn, ctx, items)
                    await _record_page(conn, ctx, name, page, more, result)
                    _add(progress, name, result)
                    if not await jobs.report_progress(
                        conn=conn, organization_id=org, job_id=job_id, progress=progress
                    ):
                        return await _end(conn, job, "cancelled", progress)
                if (
                    deadline is not None
                    and time.monotonic() >= deadline
                    and (more or name != ENTITIES[-1][0])
                ):
                    return "running"
    except Lost:
        return "running"
    except oauth.Revoked as exc:
        return await _fail(
            runtime, job, progress, {"code": "kommo_unauthorized", "message": str(exc)}
        )
    except ProviderError as exc:
        if exc.retryable:
            log.warning(
                "kommo import %s: Kommo unavailable, left for the next run: %s", job_id, exc
            )
            return await _unavailable(runtime, job, progress, claim, exc)
        code = "kommo_unauthorized" if exc.status == 401 else "kommo_refused"
        return await _fail(
            runtime, job, progress, {"code": code, "message": exc.message, "status": exc.status}
        )
    except Exception as exc:  # a bug must not leave the job running forever
        log.exception("kommo import %s failed", job_id)
        return await _fail(
            runtime,
            job,
            progress,
            {"code": "internal_error", "message": type(exc).__name__},  # the rest is logged
        )
    async with runtime.db.service_tx() as conn:
        report = await _report(conn, ctx, progress, summary, since)
        await jobs.finish(
            conn=conn,
            organization_id=org,
            job_id=job_id,
            status="completed",
            progress=progress,
            report=report,
        )
        await conn.execute("delete from private.kommo_import_leases where job_id = $1", job_id)
    return "completed"


async def _unavailable(
    runtime: Runtime,
    job: dict[str, Any],
    progress: dict[str, Any],
    claim: UUID | None,
    exc: ProviderError,
) -> str:
    async with runtime.db.service_tx() as conn:
        failures = await conn.fetchval(
            "update private.kommo_import_leases set failures = failures + 1, lease_until = now()"
            " where job_id = $1 and claim = $2 returning failures",
            job["id"],
            claim,
        )
    if failures is not None and failures >= MAX_FAILURES:
        return await _fail(
            runtime, job, progress, {"code": "kommo_unavailable", "message": exc.message}
        )
    return "running"


async def _report(
    conn: Connection,
    ctx: Context,
    progress: dict[str, Any],
    summary: dict[str, Any],
    since: datetime | None,
) -> dict[str, Any]:
    rows = await conn.fetch(
        "select entity, skipped, skipped_count from public.kommo_import_checkpoints"
        " where organization_id = $1 and job_id = $2",
        ctx.org,
        ctx.job,
    )
    return {
        "counts": progress,
        "unmatched_users": summary["unmatched_users"],
        "unmappable_fields": summary["unmappable_fields"],
        "skipped": {
            r["entity"]: {"count": r["skipped_count"], "items": r["skipped"]}
            for r in rows
            if r["skipped_count"]
        },
        "modified_since": since.isoformat() if since else None,
    }
