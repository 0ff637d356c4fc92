"""The public API under test: real keys of two organizations, and a client that checks
every answer against the API's own OpenAPI document (status, headers and body)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from shared.auth import ApiKeyPrincipal
from shared.db import Connection
from shared.runtime import Runtime
from shared.tooling.gateway import Gateway
from tests.support import issue_key, make_org, make_user, member

BASE = "/functions/v1/api"


@dataclass
class Tenant:
    org: UUID
    owner: UUID
    agent: UUID
    key: str  # read and write
    principal: ApiKeyPrincipal
    read_key: str

    def headers(self, *, read_only: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.read_key if read_only else self.key}"}


async def _tenant(db: Connection, runtime: Runtime) -> Tenant:
    owner = await make_user(db)
    org = await make_org(db, owner)
    key, principal = await issue_key(runtime, org, owner, ["read", "write"])
    read_key, _ = await issue_key(runtime, org, owner, ["read"])
    return Tenant(
        org=org,
        owner=owner,
        agent=await member(db, org, "agent"),
        key=key,
        principal=principal,
        read_key=read_key,
    )


@pytest.fixture
async def tenant(db: Connection, runtime: Runtime) -> Tenant:
    return await _tenant(db, runtime)


@pytest.fixture
async def other(db: Connection, runtime: Runtime) -> Tenant:
    """A second organization, for isolation checks."""
    return await _tenant(db, runtime)


_spec_cache: dict[str, OpenAPI] = {}


def conforms(spec: OpenAPI, request: httpx.Request, response: httpx.Response) -> None:
    """Raise unless `response` is what the OpenAPI document says this request may get."""
    content_type = response.headers.get("content-type", "").split(";")[0]
    spec.validate_response(
        MockRequest(
            host_url=f"{request.url.scheme}://{request.url.netloc.decode()}",
            method=request.method,
            path=request.url.path,
            args=dict(request.url.params),
            headers=dict(request.headers),
            data=request.content,
            content_type=request.headers.get("content-type", "application/json"),
        ),
        MockResponse(
            data=response.content,
            status_code=response.status_code,
            headers=dict(response.headers),
            content_type=content_type or "application/json",
        ),
    )


@asynccontextmanager
async def api_client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """A client of /functions/v1/api whose every answer must match the OpenAPI document."""
    gateway = Gateway(runtime.settings, runtime=runtime)

    async def check(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/openapi.json"):
            return
        await response.aread()
        if response.status_code == 405:  # an operation the document rightly does not have
            assert response.json()["error"]["code"] == "method_not_allowed"
            return
        conforms(_spec_cache["api"], response.request, response)

    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(
        transport=transport, base_url=f"http://127.0.0.1:54321{BASE}"
    ) as plain:
        if "api" not in _spec_cache:
            document = (await plain.get("/openapi.json")).json()
            _spec_cache["api"] = OpenAPI.from_dict(document)
    async with httpx.AsyncClient(
        transport=transport,
        base_url=f"http://127.0.0.1:54321{BASE}",
        event_hooks={"response": [check]},
    ) as client:
        yield client


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body
