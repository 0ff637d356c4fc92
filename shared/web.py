"""The function kit: one factory for every function's app, its errors and its dependencies.

A function module defines `router` (its endpoints) and `app = function_app(router)`
so it can be deployed alone (`uvicorn functions.health:app`). The local gateway
builds the same apps around one shared Runtime.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import api_keys
from shared.auth import (
    ApiKeyPrincipal,
    ServicePrincipal,
    UserPrincipal,
    bearer_token,
    is_service_key,
    verify_access_token,
)
from shared.db import Database
from shared.errors import (
    AppError,
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    Unauthorized,
    from_postgres,
    status_of,
)
from shared.settings import Settings, get_settings

log = logging.getLogger("connectgain")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default context, made once per process: loading the CA bundle costs
    tens of milliseconds of CPU, which httpx would otherwise spend on every Runtime."""
    return httpx.create_ssl_context()


@dataclass
class Runtime:
    """What a running function holds on to: settings, the pool, one HTTP client."""

    settings: Settings
    db: Database
    http: httpx.AsyncClient

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        db = await Database.connect(settings)
        http = httpx.AsyncClient(timeout=settings.http_timeout_seconds, verify=_tls_context())
        return cls(settings=settings, db=db, http=http)

    async def close(self) -> None:
        await self.http.aclose()
        await self.db.close()


# Young objects a serving process allocates before it collects them: a request
# makes thousands, and Python's default (700) meant several collections each
# (about 8% of a webhook's CPU in bench/ingest.py).
YOUNG_GENERATION = 20_000


def prepare_heap_for_serving() -> None:
    """Leave what import and startup made out of every later garbage collection,
    and collect the young generation less often.

    A request that builds many objects (a board of thousands of deals) triggers
    full collections; without the freeze each one walks the whole framework's
    heap, which showed as tens of milliseconds of p95 latency."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION, *gc.get_threshold()[1:])


def error_response(error: AppError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=status_of(error))


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"], "type": err["type"]}
        for err in exc.errors()
    ]
    return JSONResponse(
        {
            "error": {
                "code": "validation_error",
                "message": "The request is invalid",
                "details": details,
            }
        },
        status_code=422,
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return JSONResponse(
        {"error": {"code": codes.get(exc.status_code, "http_error"), "message": str(exc.detail)}},
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _postgres_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, asyncpg.PostgresError)
    mapped = from_postgres(exc)
    if mapped is None:
        log.exception("database error", exc_info=exc)
        return error_response(AppError("Internal error"))
    return error_response(mapped)


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(AppError("Internal error"))


class BodyLimit:
    """Refuses request bodies over `limit` bytes with 413, whether declared or streamed.

    The body is read (up to the limit) before the app runs and then replayed, so
    an oversized stream is refused before any handler has seen part of it.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = error_response(
            PayloadTooLarge(f"The request body is larger than {self.limit} bytes")
        )
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def function_app(
    *routers: APIRouter,
    name: str,
    runtime: Runtime | None = None,
    openapi: bool = False,
    max_body_bytes: int | None = None,
) -> FastAPI:
    """The app of one function; owns its Runtime unless one is handed in.

    `max_body_bytes` replaces settings.max_body_bytes for a function whose callers
    legitimately send more (a module says so with MAX_BODY_BYTES; see the gateway).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "runtime", None) is not None:
            yield
            return
        app.state.runtime = await Runtime.open(get_settings())
        prepare_heap_for_serving()
        try:
            yield
        finally:
            await app.state.runtime.close()

    app = FastAPI(
        title=f"ConnectGain {name}",
        lifespan=lifespan,
        openapi_url="/openapi.json" if openapi else None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    for router in routers:
        app.include_router(router)
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(asyncpg.PostgresError, _postgres_error)
    app.add_exception_handler(Exception, _unexpected_error)
    limit = max_body_bytes or (
        runtime.settings.max_body_bytes if runtime else get_settings().max_body_bytes
    )
    app.add_middleware(BodyLimit, limit=limit)
    return app


# ---- dependencies -------------------------------------------------------------------------
# All async: FastAPI runs a plain `def` dependency in a worker thread, a thread
# hop per request for what takes microseconds.


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise AppError("The function is not started")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def _token(request: Request) -> str:
    token = request.headers.get("x-api-key") or bearer_token(request.headers.get("authorization"))
    if token is None:
        raise Unauthorized("Sign in: send 'Authorization: Bearer <access token or cg_ key>'")
    return token


async def current_user(request: Request, runtime: RuntimeDep) -> UserPrincipal:
    token = _token(request)
    if api_keys.looks_like_key(token):
        raise Forbidden("This endpoint is for signed-in users, not API keys")
    return verify_access_token(token, runtime.settings)


async def api_key_caller(request: Request, runtime: RuntimeDep) -> ApiKeyPrincipal:
    token = _token(request)
    if not api_keys.looks_like_key(token):
        raise Unauthorized("This endpoint needs a cg_ API key", code="invalid_api_key")
    return await api_keys.authenticate(runtime.db, token)


async def any_caller(request: Request, runtime: RuntimeDep) -> UserPrincipal | ApiKeyPrincipal:
    """A signed-in user or an API key; both then run under the same RLS policies."""
    token = _token(request)
    if api_keys.looks_like_key(token):
        return await api_keys.authenticate(runtime.db, token)
    return verify_access_token(token, runtime.settings)


async def service_caller(request: Request, runtime: RuntimeDep) -> ServicePrincipal:
    """Cron and ops endpoints: only the service role key gets in."""
    if not is_service_key(_token(request), runtime.settings):
        raise Unauthorized("This endpoint needs the service role key")
    return ServicePrincipal()


CurrentUser = Annotated[UserPrincipal, Depends(current_user)]
ApiKeyCaller = Annotated[ApiKeyPrincipal, Depends(api_key_caller)]
AnyCaller = Annotated[UserPrincipal | ApiKeyPrincipal, Depends(any_caller)]
ServiceCaller = Annotated[ServicePrincipal, Depends(service_caller)]


async def json_body(request: Request) -> Any:
    """The body parsed as JSON, for endpoints that must also see the raw bytes."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BadRequest("The body is not valid JSON") from exc
