"""/v1/imports — CSV imports through the public API (admins only).

Imports are the organization's administration: a cg_ key never ranks as an admin
(it acts as a manager at most), so these routes take an admin's access token
(`Authorization: Bearer <access token>`) and refuse keys with 403. They are the
`imports` function's routes (shared/imports/web.py), with the file limit of
100 MB (functions/api.py streams this body past the usual 1 MiB).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from functions._api.common import errors
from shared.imports import web as imports
from shared.imports.web import ImportJob
from shared.web import CurrentUser, RuntimeDep

router = APIRouter(prefix="/imports", tags=["imports"])
STREAMED = {"/v1" + path: limit for path, limit in imports.STREAMED.items()}
_ERRORS = errors(401, 403, 404, 409, 413, 422)
_ADMIN = " Needs an admin's access token; cg_ keys are refused (403)."


@router.post(
    "/csv",
    status_code=202,
    response_model=ImportJob,
    responses={200: {"model": imports.DryRun, "description": "A dry run's preview"}, **_ERRORS},
    description=imports.UPLOAD_DOC + _ADMIN,
    openapi_extra=imports.UPLOAD_BODY,
)
async def upload(
    request: Request,
    user: CurrentUser,
    runtime: RuntimeDep,
    organization_id: Annotated[UUID, Query()],
    background: BackgroundTasks,
    options: Annotated[
        str | None, Query(max_length=20_000, description=imports.OPTIONS_DOC)
    ] = None,
) -> JSONResponse:
    return await imports.upload_csv(
        request=request,
        runtime=runtime,
        user=user,
        organization_id=organization_id,
        options_text=options,
        background=background,
    )


@router.get("/{job_id}", response_model=ImportJob, responses=_ERRORS, description=_ADMIN)
async def get_job(job_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    return await imports.get_job(runtime, user, job_id)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=ImportJob,
    responses=_ERRORS,
    description=_ADMIN,
    openapi_extra=imports.NO_BODY,
)
async def cancel(job_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    return await imports.cancel(runtime, user, job_id)


@router.get(
    "/{job_id}/rejected.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}, **_ERRORS},
    description="The rejected rows with their reasons, as CSV." + _ADMIN,
)
async def rejected(job_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> StreamingResponse:
    return await imports.rejected_rows(runtime, user, job_id)
