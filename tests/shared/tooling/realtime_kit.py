"""The gateway on a real port for Realtime's tests (clients speak WebSocket over TCP),
and a raw protocol client for what the official clients never send."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from shared.db import Connection
from shared.runtime import Runtime
from shared.settings import Settings
from shared.tooling.cluster import free_port
from shared.tooling.gateway import Gateway
from tests.support import LocalAuthNetwork, settings_for


@dataclass
class Served:
    gateway: Gateway
    url: str  # http://127.0.0.1:<port>, SUPABASE_URL for the clients

    @property
    def realtime_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/realtime/v1"


@asynccontextmanager
async def serving(
    settings: Settings, runtime: Runtime, interval: float = 0.005
) -> AsyncIterator[Served]:
    """The gateway under uvicorn, as `connectgain dev` serves it (without the lifespan's
    heap preparation: the Realtime feed is started here instead)."""
    gateway = Gateway(settings, runtime=runtime)
    gateway.realtime.feed.interval = interval
    port = free_port()
    config = uvicorn.Config(
        gateway, host="127.0.0.1", port=port, lifespan="off", log_level="warning", ws="auto"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.002)
    gateway.realtime.start()
    try:
        yield Served(gateway, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task
        await gateway.realtime.close()


# One server for a test module, on a database of its own (each test its own topics):
# modules import these fixtures and mark their tests asyncio(loop_scope="module").


@pytest.fixture(scope="module")
def settings(module_database_url: str) -> Settings:
    return settings_for(module_database_url)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await Runtime.open(settings, transport=LocalAuthNetwork(settings))
    yield runtime
    await runtime.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def db(runtime: Runtime) -> AsyncIterator[Connection]:
    async with runtime.db.pool.acquire() as conn:
        yield conn


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(settings: Settings, runtime: Runtime) -> AsyncIterator[Served]:
    async with serving(settings, runtime) as served:
        yield served


class Raw:
    """A protocol client by hand: frames as the serializers put them, and garbage."""

    def __init__(self, ws: ClientConnection, vsn: str) -> None:
        self.ws, self.vsn = ws, vsn
        self.refs = 0

    def frame(
        self, topic: str, event: str, payload: Any, ref: str | None, join_ref: str | None
    ) -> str:
        if self.vsn == "1.0.0":
            fields = {"topic": topic, "event": event, "payload": payload}
            return json.dumps({**fields, "ref": ref, "join_ref": join_ref})
        return json.dumps([join_ref, ref, topic, event, payload])

    async def send(self, topic: str, event: str, payload: Any, join_ref: str | None = None) -> str:
        """Sends a frame with the next ref; returns the ref."""
        self.refs += 1
        ref = str(self.refs)
        await self.ws.send(self.frame(topic, event, payload, ref, join_ref or ref))
        return ref

    async def recv(self, seconds: float = 2.0) -> dict[str, Any]:
        """The next frame, as a dict whatever the serializer (binary ones raw)."""
        data = await asyncio.wait_for(self.ws.recv(), seconds)
        if isinstance(data, bytes):
            return {"binary": data}
        decoded = json.loads(data)
        if isinstance(decoded, list):
            fields = ("join_ref", "ref", "topic", "event", "payload")
            return dict(zip(fields, decoded, strict=True))
        return dict(decoded)

    async def reply_to(self, ref: str, seconds: float = 2.0) -> dict[str, Any]:
        while True:
            frame = await self.recv(seconds)
            if frame.get("event") == "phx_reply" and frame.get("ref") == ref:
                return dict(frame["payload"])

    async def join(
        self, topic: str, config: dict[str, Any], token: str | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"config": config}
        if token is not None:
            payload["access_token"] = token
        return await self.reply_to(await self.send(topic, "phx_join", payload))


@asynccontextmanager
async def raw(served: Served, apikey: str, vsn: str = "1.0.0") -> AsyncIterator[Raw]:
    url = f"{served.realtime_url}/websocket?apikey={apikey}&vsn={vsn}"
    async with connect(url, max_size=None) as ws:
        yield Raw(ws, vsn)
