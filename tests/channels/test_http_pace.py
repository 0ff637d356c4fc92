"""The provider client's pacer: every attempt, retries included, waits for its turn, and
is told when its request was written (httpcore's trace) or else when it ended."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import respx

from shared.channels import http as provider_http
from shared.channels.http import ProviderClient
from shared.settings import Settings

URL = "https://provider.example/send"


class Recording:
    """A pacer that admits at once and notes each attempt's events in order."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def admit(self) -> None:
        self.events.append("admitted")

    def written(self) -> None:
        self.events.append("written")

    @asynccontextmanager
    async def attempt(self) -> AsyncIterator[Recording]:
        self.events.append("attempt")
        try:
            yield self
        finally:
            self.events.append("ended")


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    async def unslept(seconds: float) -> None:
        pass

    monkeypatch.setattr(provider_http, "sleep", unslept)
    return Settings(_env_file=None)  # type: ignore[call-arg]


@respx.mock
async def test_every_attempt_is_paced_retries_included(settings: Settings) -> None:
    respx.post(URL).mock(
        side_effect=[httpx.Response(429), httpx.ConnectError("refused"), httpx.Response(200)]
    )
    pacer = Recording()
    async with httpx.AsyncClient() as http:
        client = ProviderClient(http, settings, pace=pacer)
        assert (await client.request("POST", URL, json={}, at_most_once=True)).status_code == 200
    # a mocked transport reports nothing: each attempt only begins and ends, three times
    assert pacer.events == ["attempt", "ended"] * 3
    assert len(client.attempts) == 3


async def test_the_write_is_reported_before_the_answer_over_real_http(
    settings: Settings,
) -> None:
    pacer = Recording()
    arrived, answered = asyncio.Event(), asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        pacer.events.append("arrived")
        arrived.set()
        await answered.wait()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, httpx.AsyncClient() as http:
        client = ProviderClient(http, settings, pace=pacer)
        call = asyncio.create_task(
            client.request("POST", f"http://127.0.0.1:{port}/", content=b"{}")
        )
        await arrived.wait()
        assert "written" in pacer.events  # told while the answer is still awaited
        answered.set()
        assert (await call).status_code == 200
    # admitted as the request was about to be written, told once it was
    assert pacer.events[:2] == ["attempt", "admitted"] and pacer.events[-1] == "ended"
    assert sorted(pacer.events[2:4]) == ["arrived", "written"]
