"""A runtime whose calls to `<SUPABASE_URL>/auth/v1` reach the local Auth in process,
as under `connectgain dev`, where SUPABASE_URL is the gateway itself."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from shared.runtime import Runtime
from shared.settings import Settings
from shared.tooling.gateway import Gateway


class GatewayNetwork(httpx.AsyncBaseTransport):
    """Everything under SUPABASE_URL goes to the gateway (its Auth and its functions)."""

    def __init__(self, settings: Settings) -> None:
        self.prefix = settings.supabase_url.rstrip("/") + "/"
        self.gateway: Gateway | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.gateway is None or not str(request.url).startswith(self.prefix):
            raise httpx.ConnectError("only the local gateway is reachable in this test")
        transport = httpx.ASGITransport(app=self.gateway)
        return await transport.handle_async_request(request)


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    network = GatewayNetwork(settings)
    runtime = await Runtime.open(settings, transport=network)
    network.gateway = Gateway(settings, runtime=runtime)
    try:
        yield network.gateway
    finally:
        await runtime.close()


@pytest.fixture
async def local(settings: Settings, gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway at SUPABASE_URL, as an app reaches it."""
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url=settings.supabase_url) as c:
        yield c
