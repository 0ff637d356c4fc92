"""Kommo imports for an organization's admins: connect an account, start an import,
follow it, cancel it, read its report.

Served twice, by the `kommo-import` function and by the public API at
/v1/imports/kommo: the same routes, for a signed-in admin's access token (an
import is an admin's decision, and API keys rank as managers at most).

    POST /connect               {organization_id, subdomain, token}: checked with Kommo,
                                then stored; the token is never returned
    POST /oauth/start           {organization_id}: Kommo's consent page for OAuth 2.0
    POST /oauth/callback        {code, referer, state} as Kommo sent them back: the code
                                exchanged, the account checked, the tokens stored
    GET  /connection?organization_id=…
    POST /jobs                  {organization_id, full?}: a new import (one at a time)
    GET  /jobs?organization_id=…
    GET  /jobs/{id}             status and progress (also broadcast as `import.progress`)
    POST /jobs/{id}/cancel      stops it between pages
    GET  /jobs/{id}/report      counts, unmatched users, fields imported as text, skipped items
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from shared.guard import describe_errors
from shared.imports import jobs
from shared.imports.jobs import JobStatus
from shared.imports.kommo import connect as kommo
from shared.imports.web import JobState
from shared.web import CurrentUser, RuntimeDep

ERRORS = describe_errors(
    401,
    402,
    403,
    404,
    409,
    422,
    502,
    503,
    meaning={
        402: "The organization's plan does not include imports",
        403: "Not an admin of the organization, or an API key (imports need a signed-in admin)",
        422: "Invalid input, a token Kommo refused or an unknown subdomain; the code says which",
        503: "Kommo did not answer, or OAuth is not configured here; nothing changed",
    },
)


class ConnectRequest(BaseModel):
    organization_id: UUID
    subdomain: str = Field(min_length=1, max_length=200, description="acme, of acme.kommo.com")
    token: str = Field(
        min_length=1, max_length=4096, description="A long-lived token of the account"
    )


class OAuthStartRequest(BaseModel):
    organization_id: UUID


class OAuthStart(BaseModel):
    url: str = Field(description="Kommo's consent page; its state is good for ten minutes")


class OAuthCallbackRequest(BaseModel):
    """The query Kommo sent the admin back with, to the integration's redirect URI."""

    code: str = Field(min_length=1, max_length=4096, description="The authorization code")
    referer: str = Field(min_length=1, max_length=200, description="acme.kommo.com")
    state: str = Field(min_length=1, max_length=2048)


class Connection(BaseModel):
    organization_id: UUID
    subdomain: str
    account_id: int
    account_name: str
    currency: str | None
    connected_by: UUID | None
    connected_at: datetime
    auth: Literal["token", "oauth"] = Field(
        description="A long-lived token, or OAuth 2.0 (its access token renewed as it expires)"
    )


class StartRequest(BaseModel):
    organization_id: UUID
    full: bool = Field(
        default=False,
        description="Read everything again, not only what changed since the last import",
    )


class Jobs(BaseModel):
    data: list[JobState]


class CancelRequest(BaseModel):
    """An empty object (or no body): there is nothing to say about a cancel."""

    model_config = ConfigDict(extra="forbid")


class Report(BaseModel):
    id: UUID
    status: JobStatus
    report: dict[str, Any] | None = Field(
        description="counts per entity, unmatched_users, unmappable_fields (imported as text),"
        " skipped items with reasons; null until the import completes"
    )
    error: dict[str, Any] | None


def routes(*, tags: list[str] | None = None) -> APIRouter:
    router = APIRouter(tags=list(tags or ["kommo"]), responses=ERRORS)

    @router.post("/connect", status_code=201, response_model=Connection, summary="Connect Kommo")
    async def connect(body: ConnectRequest, user: CurrentUser, runtime: RuntimeDep) -> Any:
        return await kommo.connect(
            runtime,
            user=user,
            organization_id=body.organization_id,
            subdomain=body.subdomain,
            token=body.token,
        )

    @router.post("/oauth/start", response_model=OAuthStart, summary="Connect Kommo by OAuth 2.0")
    async def oauth_start(body: OAuthStartRequest, user: CurrentUser, runtime: RuntimeDep) -> Any:
        url = await kommo.start_oauth(runtime, user=user, organization_id=body.organization_id)
        return {"url": url}

    @router.post(
        "/oauth/callback",
        status_code=201,
        response_model=Connection,
        summary="Finish connecting Kommo by OAuth 2.0",
    )
    async def oauth_callback(
        body: OAuthCallbackRequest, user: CurrentUser, runtime: RuntimeDep
    ) -> Any:
        return await kommo.connect_oauth(
            runtime, user=user, state=body.state, code=body.code, referer=body.referer
        )

    @router.get("/connection", response_model=Connection, summary="The connected Kommo account")
    async def connection(organization_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> Any:
        async with runtime.db.user_tx(user) as conn:
            return await kommo.get_connection(conn=conn, organization_id=organization_id)

    @router.post("/jobs", status_code=201, response_model=JobState, summary="Start a Kommo import")
    async def start(body: StartRequest, user: CurrentUser, runtime: RuntimeDep) -> Any:
        async with runtime.db.user_tx(user) as conn:
            return await kommo.start_import(
                conn=conn, user=user, organization_id=body.organization_id, full=body.full
            )

    @router.get("/jobs", response_model=Jobs, summary="The organization's Kommo imports")
    async def list_jobs(organization_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> Any:
        async with runtime.db.user_tx(user) as conn:
            return {"data": await kommo.list_kommo_jobs(conn=conn, organization_id=organization_id)}

    @router.get("/jobs/{job_id}", response_model=JobState, summary="A Kommo import's status")
    async def status(job_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> Any:
        async with runtime.db.user_tx(user) as conn:
            return await kommo.kommo_job(conn=conn, job_id=job_id)

    @router.post("/jobs/{job_id}/cancel", response_model=JobState, summary="Cancel a Kommo import")
    async def cancel(
        job_id: UUID, user: CurrentUser, runtime: RuntimeDep, body: CancelRequest | None = None
    ) -> Any:
        async with runtime.db.user_tx(user) as conn:
            await kommo.kommo_job(conn=conn, job_id=job_id)
            await jobs.request_cancel(conn=conn, job_id=job_id)
            return await kommo.kommo_job(conn=conn, job_id=job_id)

    @router.get("/jobs/{job_id}/report", response_model=Report, summary="A Kommo import's report")
    async def report(job_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> Any:
        async with runtime.db.user_tx(user) as conn:
            return await kommo.kommo_job(conn=conn, job_id=job_id)

    return router


router = APIRouter(prefix="/imports/kommo")
router.include_router(routes(tags=["imports"]))
