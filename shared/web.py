"""The function kit: one factory for every function's app, its errors and its dependencies.

A function module defines `router` (its endpoints) and `app = function_app(router)`
so it can be deployed alone (`uvicorn functions.health:app`). The local gateway
builds the same apps around one shared Runtime.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp

from shared import api_keys
from shared.auth import (
    ApiKeyPrincipal,
    ServicePrincipal,
    UserPrincipal,
    bearer_token,
    is_service_key,
    verify_access_token,
)
from shared.errors import (
    AppError,
    BadRequest,
    Forbidden,
    Unauthorized,
    Unprocessable,
    from_postgres,
)
from shared.guard import InputGuard, KeepAlive, describe_errors, error_response
from shared.idempotency import Answer
from shared.runtime import Runtime
from shared.safejson import printable
from shared.settings import get_settings

log = logging.getLogger("connectgain")


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


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only the field, message and type: never the input, which may hold anything.
    details = [
        {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"], "type": err["type"]}
        for err in exc.errors()
    ]
    return error_response(
        Unprocessable("The request is invalid", details=details, code="validation_error")
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    return JSONResponse(
        printable({"error": {"code": code, "message": str(exc.detail)}}),
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


def respond(answer: Answer) -> JSONResponse:
    """A domain answer as the response; a replayed one says so in a header."""
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


class SignedRouter(APIRouter):
    """The routes of a webhook: their bodies are providers' signed deliveries."""

    signed_bodies = True


# What supabase-js (functions-js) and our callers send, and what a browser may read.
CORS_REQUEST_HEADERS = (
    "authorization",
    "apikey",
    "content-type",
    "x-client-info",
    "x-supabase-api-version",  # supabase-js's Auth client sends it
    "x-region",
    "x-api-key",
    "idempotency-key",
)
CORS_EXPOSED_HEADERS = ("Idempotent-Replayed", "Retry-After", "Content-Length")
CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class Cors(CORSMiddleware):
    """Starlette's CORS, configured once for every function; a refused preflight
    gets our JSON error body (with no Access-Control-Allow-Origin)."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        super().__init__(
            app,
            allow_origins=tuple(origins),
            allow_methods=CORS_METHODS,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            # Callers authenticate with bearer tokens, never cookies.
            allow_credentials=False,
            max_age=3600,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        refused = error_response(
            BadRequest(
                f"CORS preflight refused: {bytes(response.body).decode()}",
                code="cors_refused",
            )
        )
        for name, value in response.headers.items():
            if name.startswith("access-control-") or name == "vary":
                refused.headers[name] = value
        return refused


class FunctionApp(FastAPI):
    """A function's app: CORS and KeepAlive outside Starlette's own error middleware,
    so every answer, a 500 included, carries the CORS headers."""

    cors_origins: Sequence[str] = ("*",)

    def build_middleware_stack(self) -> ASGIApp:
        return KeepAlive(Cors(super().build_middleware_stack(), self.cors_origins))


def function_app(
    *routers: APIRouter,
    name: str,
    runtime: Runtime | None = None,
    openapi: bool = True,
    max_body_bytes: int | None = None,
    signed_bodies: bool = False,
    error_statuses: tuple[int, ...] = (400, 401, 402, 403, 404, 409, 502),
    cors_origins: Sequence[str] | None = None,
    streamed_bodies: Mapping[str, int] | None = None,
) -> FastAPI:
    """The app of one function; owns its Runtime unless one is handed in.

    Every function serves its OpenAPI document at /openapi.json, with the error
    answers of shared/guard.py (413, 422) and `error_statuses` on every route (a
    module whose routes document their own says so with ERROR_STATUSES = ()).
    `max_body_bytes` replaces settings.max_body_bytes for a function whose callers
    legitimately send more (a module says so with MAX_BODY_BYTES; see the gateway).
    `signed_bodies` (or a SignedRouter): the body is a provider's signed delivery,
    kept whatever it holds, not an API input (shared/guard.py).
    `cors_origins` replaces settings.cors_origins (the gateway passes its own).
    `streamed_bodies`: routes (path suffix → limit) whose large bodies are read as they
    arrive rather than held by the guard (a module says so with STREAMED_BODIES).
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

    app = FunctionApp(
        title=f"ConnectGain {name}",
        lifespan=lifespan,
        openapi_url="/openapi.json" if openapi else None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    settings = runtime.settings if runtime else get_settings()
    app.cors_origins = settings.cors_origins if cors_origins is None else tuple(cors_origins)
    for router in routers:
        app.include_router(router, responses=describe_errors(*error_statuses, 413, 422))
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(asyncpg.PostgresError, _postgres_error)
    app.add_exception_handler(Exception, _unexpected_error)
    limit = max_body_bytes or settings.max_body_bytes
    signed = signed_bodies or any(isinstance(r, SignedRouter) for r in routers)
    app.add_middleware(InputGuard, limit=limit, api_bodies=not signed, streamed=streamed_bodies)
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
    return await verify_access_token(token, settings=runtime.settings, jwks=runtime.jwks)


async def any_caller(request: Request, runtime: RuntimeDep) -> UserPrincipal | ApiKeyPrincipal:
    """A signed-in user or an API key; both then run under the same RLS policies."""
    token = _token(request)
    if api_keys.looks_like_key(token):
        return await api_keys.authenticate(runtime.db, token)
    return await verify_access_token(token, settings=runtime.settings, jwks=runtime.jwks)


async def service_caller(request: Request, runtime: RuntimeDep) -> ServicePrincipal:
    """Cron and ops endpoints: only the service role key gets in."""
    if not is_service_key(_token(request), runtime.settings):
        raise Unauthorized("This endpoint needs the service role key")
    return ServicePrincipal()


CurrentUser = Annotated[UserPrincipal, Depends(current_user)]
AnyCaller = Annotated[UserPrincipal | ApiKeyPrincipal, Depends(any_caller)]
ServiceCaller = Annotated[ServicePrincipal, Depends(service_caller)]
