"""/functions/v1/imports — CSV imports of contacts and companies (admins only).

POST /csv?organization_id=…&options=…   the file as the body (text/csv) or multipart `file`;
                                        202 the job, or 200 a dry run's preview
GET  /?organization_id=…               the organization's import jobs (CSV and Kommo), newest first
GET  /{id}                             one job: status, progress, report
POST /{id}/cancel                      202; the runner stops before its next chunk
GET  /{id}/rejected.csv                the rejected rows with their reasons (CSV, streamed)

How a file is read, mapped, deduplicated and merged: shared/imports/.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from shared.imports import jobs
from shared.imports import web as imports
from shared.imports.web import ImportJob
from shared.web import CurrentUser, RuntimeDep, function_app

router = APIRouter()
STREAMED_BODIES = imports.STREAMED

OrganizationId = Annotated[UUID, Query(description="The organization that imports")]
Options = Annotated[str | None, Query(max_length=20_000, description=imports.OPTIONS_DOC)]


@router.post(
    "/csv",
    status_code=202,
    response_model=ImportJob,
    responses={200: {"model": imports.DryRun, "description": "A dry run's preview"}},
    description=imports.UPLOAD_DOC,
    openapi_extra=imports.UPLOAD_BODY,
)
async def upload(
    request: Request,
    user: CurrentUser,
    runtime: RuntimeDep,
    organization_id: OrganizationId,
    background: BackgroundTasks,
    options: Options = None,
) -> JSONResponse:
    return await imports.upload_csv(
        request=request,
        runtime=runtime,
        user=user,
        organization_id=organization_id,
        options_text=options,
        background=background,
    )


@router.get("/", response_model=list[ImportJob])
async def list_jobs(
    user: CurrentUser, runtime: RuntimeDep, organization_id: OrganizationId
) -> list[dict[str, Any]]:
    async with runtime.db.user_tx(user) as conn:
        return await jobs.list_jobs(conn=conn, organization_id=organization_id)


@router.get("/{job_id}", response_model=ImportJob)
async def get_job(job_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    return await imports.get_job(runtime, user, job_id)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=ImportJob,
    openapi_extra=imports.NO_BODY,
)
async def cancel(job_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    return await imports.cancel(runtime, user, job_id)


@router.get(
    "/{job_id}/rejected.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def rejected(job_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> StreamingResponse:
    return await imports.rejected_rows(runtime, user, job_id)


app = function_app(router, name="imports", streamed_bodies=STREAMED_BODIES)
