"""Over a real server (uvicorn) and one keep-alive connection: a refused request, and
even an unexpected error, leave the connection open for the next request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import APIRouter
from starlette.types import ASGIApp

from shared.runtime import Runtime
from shared.tooling.cluster import free_port
from shared.tooling.gateway import Gateway
from shared.web import function_app


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """The app behind uvicorn on a free port, and one open connection to it."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="critical")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110  (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        await writer.wait_closed()
        server.should_exit = True
        await task


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str, body: bytes
) -> tuple[int, dict[str, str], bytes]:
    """One request and its answer on the open connection."""
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    content = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, content


async def test_refused_requests_keep_the_connection(runtime: Runtime):
    gateway = Gateway(runtime.settings, runtime=runtime)
    async with serving(gateway) as (reader, writer):
        refused = [
            ("POST", "/functions/v1/api/v1/contacts", b'{"name": "A\\u0000"}'),
            ("POST", "/functions/v1/api/v1/contacts", b"[" * 5000 + b"]" * 5000),
            ("POST", "/functions/v1/api/v1/contacts", b'{"name": "A\\ud800"}'),
            ("GET", "/functions/v1/api/v1/contacts?filter=%00", b""),
        ]
        for method, path, body in refused:
            status, headers, _ = await exchange(reader, writer, method, path, body)
            assert status == 422
            assert headers.get("connection") != "close"
        status, _, content = await exchange(reader, writer, "GET", "/functions/v1/health/", b"")
        assert (status, content) == (200, b'{"status":"ok","database":"ok"}')


async def test_an_unexpected_error_answers_500_and_keeps_the_connection(runtime: Runtime):
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @router.get("/fine")
    async def fine() -> dict[str, bool]:
        return {"ok": True}

    async with serving(function_app(router, name="boom", runtime=runtime)) as (reader, writer):
        status, _, content = await exchange(reader, writer, "GET", "/boom", b"")
        assert (status, content) == (
            500,
            b'{"error":{"code":"internal_error","message":"Internal error"}}',
        )
        status, _, content = await exchange(reader, writer, "GET", "/fine", b"")
        assert (status, content) == (200, b'{"ok":true}')
