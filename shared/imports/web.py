"""The CSV import's endpoints, shared by the `imports` function and the public API.

The file comes as the raw body (`Content-Type: text/csv`, or any non-JSON type)
or as the `file` part of a multipart/form-data body; either way it is streamed
to a temporary file on local disk (never held in memory) and the guard stops it
at MAX_FILE_BYTES (413). The options come as JSON in the `options` query
parameter (or a multipart field of that name).
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from typing import IO, Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from shared.auth import UserPrincipal
from shared.errors import BadRequest, NotFound
from shared.guard import describe_errors
from shared.imports import jobs, runner, upload
from shared.imports.jobs import JobStatus
from shared.imports.preview import dry_run
from shared.runtime import Runtime
from shared.web import CurrentUser, RuntimeDep

STREAMED = {"/csv": upload.MAX_FILE_BYTES}  # path suffix → limit (the guard streams it)
OPTIONS_DOC = (
    "The import's options as JSON: entity (contacts | companies), mapping {header: target |"
    " null}, dedupe (skip | update_empty | overwrite), match ([email, phone] or [domain,"
    " name]), default_region (e.g. US), tags, dry_run, preview"
)
UPLOAD_DOC = """Upload a CSV file (≤ 100 MB) to import contacts or companies; admins only.

The body is the file (`Content-Type: text/csv`) or a multipart/form-data body with
a `file` part. Encoding (UTF-8 with or without BOM, UTF-16 with BOM, Windows-1252)
and delimiter (`,` `;` tab) are detected. With `dry_run` the answer (200) shows the
first `preview` rows as they would be stored, with each row's error, and nothing is
stored; otherwise the rows are staged, the job (202) runs in the background and its
progress is broadcast as `import.progress` on `org:<id>:inbox`. A file that is not a
CSV (422 `not_csv`) or a mapping to an unknown field (422) stores nothing."""


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "options": {"type": "string", "description": OPTIONS_DOC},
                    },
                    "required": ["file"],
                }
            },
        },
    }
}


# A cancel takes no input; documented as an optional empty object, as POSTs here are.
NO_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}},
    }
}


class JobState(BaseModel):
    """Where an import job stands: what every importer's job answers carry."""

    id: UUID
    organization_id: UUID
    status: JobStatus
    options: dict[str, Any]
    progress: dict[str, Any]
    error: dict[str, Any] | None
    cancel_requested: bool
    created_by: UUID | None
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ImportJob(JobState):
    source: Literal["csv", "kommo"]
    entity: Literal["contacts", "companies"] | None
    report: dict[str, Any] | None


class PreviewRow(BaseModel):
    line: int
    outcome: Literal["created", "updated", "unchanged", "merged", "skipped", "rejected"]
    error: str | None
    values: list[str]
    record: dict[str, Any] | None


class DryRun(BaseModel):
    dry_run: Literal[True]
    entity: Literal["contacts", "companies"]
    columns: list[str]
    encoding: str
    delimiter: str
    mapping: dict[str, str | None]
    counts: dict[str, int]
    rows: list[PreviewRow]


async def _spool(request: Request) -> tuple[IO[bytes], str | None]:
    """The uploaded file on local disk, and the options of a multipart body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=5)
        part, options = form.get("file"), form.get("options")
        if not isinstance(part, UploadFile):
            raise BadRequest("Send the CSV file as the multipart part named 'file'")
        return part.file, options if isinstance(options, str) else None
    if content_type.startswith("application/json"):
        raise BadRequest("Send the CSV file itself (Content-Type: text/csv), not JSON")
    spooled = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the caller)
    try:
        async for chunk in request.stream():
            spooled.write(chunk)
    except BaseException:
        spooled.close()  # over the limit, or the client left
        raise
    spooled.seek(0)
    return spooled, None


async def upload_csv(
    *,
    request: Request,
    runtime: Runtime,
    user: UserPrincipal,
    organization_id: UUID,
    options_text: str | None,
    background: BackgroundTasks,
) -> JSONResponse:
    await upload.require_admin(db=runtime.db, principal=user, organization_id=organization_id)
    file, form_options = await _spool(request)
    try:
        options = upload.parse_options(options_text or form_options)
        if options.dry_run:
            preview = await dry_run(
                db=runtime.db,
                user_id=user.user_id,
                organization_id=organization_id,
                file=file,
                options=options,
            )
            return JSONResponse(DryRun.model_validate(preview).model_dump(mode="json"))
        job = await upload.start_import(
            db=runtime.db,
            user_id=user.user_id,
            organization_id=organization_id,
            file=file,
            options=options,
        )
    finally:
        file.close()
    background.add_task(runner.run_job, runtime, job["id"])
    return JSONResponse(ImportJob.model_validate(job).model_dump(mode="json"), status_code=202)


async def get_job(runtime: Runtime, user: UserPrincipal, job_id: UUID) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await jobs.get_job(conn=conn, job_id=job_id)


async def cancel(runtime: Runtime, user: UserPrincipal, job_id: UUID) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        await jobs.request_cancel(conn=conn, job_id=job_id)
        return await jobs.get_job(conn=conn, job_id=job_id)


async def rejected_rows(runtime: Runtime, user: UserPrincipal, job_id: UUID) -> StreamingResponse:
    """The error report: streamed from the database, never built in memory."""
    job = await get_job(runtime, user, job_id)  # under the admin's RLS: 404 for others
    if job["source"] != "csv":
        raise NotFound("import job")

    async def stream() -> Any:
        async with runtime.db.service_tx() as conn:
            async for chunk in runner.rejected_csv(
                conn,
                job_id=job["id"],
                organization_id=job["organization_id"],
                columns=job["options"].get("columns", []),
            ):
                yield chunk

    return StreamingResponse(
        stream(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{job_id}-rejected.csv"'},
    )


# ---- the routes (the `imports` function; the public API mounts them at /v1/imports) -----------

router = APIRouter()
_ERRORS = describe_errors(
    401,
    402,
    403,
    404,
    409,
    413,
    422,
    meaning={
        402: "The organization's plan does not include imports",
        403: "Not an admin of the organization, or a cg_ key",
    },
)
OrganizationId = Annotated[UUID, Query(description="The organization that imports")]
Options = Annotated[str | None, Query(max_length=20_000, description=OPTIONS_DOC)]


@router.post(
    "/csv",
    status_code=202,
    response_model=ImportJob,
    responses={200: {"model": DryRun, "description": "A dry run's preview"}, **_ERRORS},
    description=UPLOAD_DOC,
    openapi_extra=UPLOAD_BODY,
)
async def upload_route(
    request: Request,
    user: CurrentUser,
    runtime: RuntimeDep,
    organization_id: OrganizationId,
    background: BackgroundTasks,
    options: Options = None,
) -> JSONResponse:
    return await upload_csv(
        request=request,
        runtime=runtime,
        user=user,
        organization_id=organization_id,
        options_text=options,
        background=background,
    )


@router.get("/", response_model=list[ImportJob], responses=_ERRORS)
async def list_route(
    user: CurrentUser, runtime: RuntimeDep, organization_id: OrganizationId
) -> list[dict[str, Any]]:
    """The organization's import jobs (CSV and Kommo), newest first."""
    async with runtime.db.user_tx(user) as conn:
        return await jobs.list_jobs(conn=conn, organization_id=organization_id)


@router.get("/{job_id}", response_model=ImportJob, responses=_ERRORS)
async def get_route(job_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    """One job: status, progress, report."""
    return await get_job(runtime, user, job_id)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=ImportJob,
    responses=_ERRORS,
    openapi_extra=NO_BODY,
)
async def cancel_route(job_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    """Stop the job before its next chunk; what was merged stays (409 once finished)."""
    return await cancel(runtime, user, job_id)


@router.get(
    "/{job_id}/rejected.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}, **_ERRORS},
)
async def rejected_route(job_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> StreamingResponse:
    """The rejected rows with their reasons, as CSV: line, the fields as read, error."""
    return await rejected_rows(runtime, user, job_id)
