"""What every function refuses before any handler, parser or signature check runs.

- A body over the function's limit: 413, whether declared or streamed.
- A JSON body nested deeper than safejson.MAX_DEPTH: 422 (every parser on the way
  recurses; Python's gives up with RecursionError).
- NUL in a header, the path or the query string: 422 naming it (PostgreSQL text
  cannot hold NUL, and none of ours means anything with one).
- For functions that read their body as an API input (all but the webhooks,
  whose signed bodies are kept whatever they hold): a JSON body with NaN,
  Infinity, a number past a float's range, NUL or a lone surrogate in any
  string: 422 naming the field.

Each answer is the usual {"error": {"code", "message", "details"}} with details
[{"field", "message", "type"}] as for a validation error.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import AppError, PayloadTooLarge, Unprocessable, status_of
from shared.safejson import MAX_DEPTH, clean_json, printable, too_deep, unstorable


def error_response(error: AppError) -> JSONResponse:
    """The error's answer; whatever its message or details echo, valid JSON in UTF-8."""
    return JSONResponse(printable(error.body()), status_code=status_of(error))


def invalid(field: str, message: str, kind: str = "value_error") -> Unprocessable:
    return Unprocessable(
        f"{field}: {message}",
        details=[{"field": field, "message": message, "type": kind}],
    )


def _nul_in_head(scope: Scope) -> Unprocessable | None:
    for name, value in scope.get("headers", []):
        if b"\x00" in value or b"\x00" in name:
            return invalid(f"header.{printable(name.decode('latin-1'))}", "contains NUL")
    if "\x00" in scope.get("path", "") or b"%00" in scope.get("raw_path", b""):
        return invalid("path", "contains NUL")
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name + value:
                return invalid(f"query.{printable(name)}", "contains NUL")
        return invalid("query", "contains NUL")
    return None


def _looks_like_json(body: bytes) -> bool:
    return body.lstrip()[:1] in (b"{", b"[")


def _unstorable_input(body: bytes) -> Unprocessable | None:
    """The first value of a JSON body no endpoint can take; None also when it is not
    JSON at all (FastAPI's own validation says so, as for any invalid body).
    A clean body (the common case) is not parsed here: FastAPI parses it anyway."""
    if clean_json(body):
        return None
    try:
        data = json.loads(body)  # NaN and Infinity parse here, to be named below
    except (ValueError, RecursionError):
        return None
    problem = unstorable(data, "body")
    return None if problem is None else invalid(printable(problem[0]), problem[1])


class InputGuard:
    """Reads the body (up to `limit`), checks the request and replays the body.

    `streamed` names routes (a path suffix) that take a large non-JSON body (a CSV
    upload) with their own limit: such a body is passed on as it arrives, never held
    in memory here, and reading past the limit raises PayloadTooLarge in the reader."""

    def __init__(
        self, app: ASGIApp, limit: int, api_bodies: bool, streamed: Mapping[str, int] | None = None
    ) -> None:
        self.app, self.limit, self.api_bodies = app, limit, api_bodies
        self.streamed = dict(streamed or {})

    def _stream_limit(self, scope: Scope) -> int | None:
        if scope.get("method") != "POST":
            return None
        content_type = dict(scope["headers"]).get(b"content-type", b"")
        if content_type.startswith(b"application/json"):
            return None
        path: str = scope.get("path", "")
        for suffix, limit in self.streamed.items():
            if path.rstrip("/").endswith(suffix):
                return limit
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (refused := _nul_in_head(scope)) is not None:
            await error_response(refused)(scope, receive, send)
            return
        too_large = functools.partial(self._too_large, scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if (stream_limit := self._stream_limit(scope)) is not None:
            if declared is not None and declared.isdigit() and int(declared) > stream_limit:
                await self._too_large(scope, receive, send, stream_limit)
                return
            await self.app(scope, _counted(receive, stream_limit), send)
            return
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_large()
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
                await too_large()
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        refused = self._check_body(body)
        if refused is not None:
            await error_response(refused)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(
        self, scope: Scope, receive: Receive, send: Send, limit: int | None = None
    ) -> None:
        refused = PayloadTooLarge(f"The request body is larger than {limit or self.limit} bytes")
        await error_response(refused)(scope, receive, send)

    def _check_body(self, body: bytes) -> Unprocessable | None:
        if not _looks_like_json(body):
            return None
        if too_deep(body):
            return invalid("body", f"nests deeper than {MAX_DEPTH} levels", "too_deep")
        return _unstorable_input(body) if self.api_bodies else None


def _counted(receive: Receive, limit: int) -> Receive:
    """`receive`, raising PayloadTooLarge once more than `limit` bytes have come."""
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes")
        return message

    return counted


class KeepAlive:
    """The outermost layer: an unexpected error still ends in an answer, and the
    connection stays open.

    Starlette's ServerErrorMiddleware answers an unhandled exception (our 500,
    logged by its handler) and then raises it again for the server, and a server
    that sees the exception drops the keep-alive connection. Once the answer has
    gone out, the exception is the server's no more."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered = False

        async def watch(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if not answered:
                raise


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """Every error answer: {"error": {"code", "message", "details"?}}."""

    error: ErrorDetail


def describe_errors(
    *codes: int, meaning: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error answers a route may give; `meaning` words
    them for one audience (the public API's key holders, say)."""
    words = {**_MEANING, **(meaning or {})}
    return {code: {"model": ErrorBody, "description": words[code]} for code in codes}


_MEANING = {
    400: "The body is not what the endpoint reads",
    401: "No credentials, or wrong or expired ones",
    402: "The plan does not allow it: `plan_limit` (limit, value, usage) or `feature_unavailable`",
    403: "Authenticated, not allowed",
    404: "Not found (also: another organization's record)",
    409: "A conflict: a duplicate, or the state forbids it",
    413: "The request body is too large",
    422: "Invalid input; the details name the field",
    502: "A provider failed",
    503: "A dependency did not act; try again later",
}
