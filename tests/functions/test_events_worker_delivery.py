"""How webhook deliveries go out: signatures across a rotation, a slow endpoint, a real
receiver on this machine (and production's refusal of it), the lease's bound."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

import httpx
import pytest
import respx
from standardwebhooks import Webhook

from shared.db import Connection
from shared.events import worker
from shared.runtime import Runtime
from shared.settings import Settings
from tests.functions.webhooks_kit import (
    HOOK,
    SLOW,
    endpoint,
    hook_and_contact,
    later,
    make_admins,
    public_dns,
    verified,
)
from tests.support import auth, make_contact


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> None:
    public_dns(monkeypatch)


@pytest.fixture
async def org(db: Connection) -> dict[str, UUID]:
    return await make_admins(db)


async def test_after_a_rotation_deliveries_verify_with_the_old_and_the_new_secret(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    hook = await endpoint(client, settings, org, HOOK, ["task.created", "contact.created"])
    rotated = await client.post(
        f"/functions/v1/webhook-endpoints/{hook['id']}/rotate-secret",
        headers=auth(settings, org["admin"]),
    )
    await make_contact(db, org["org"])
    with respx.mock as router:
        route = router.post(HOOK).respond(200)
        await worker.run(runtime, now=later(seconds=1))
        (call,) = route.calls
        assert len(call.request.headers["webhook-signature"].split(" ")) == 2
        assert verified(hook["secret"], call.request)["type"] == "contact.created"
        assert verified(rotated.json()["secret"], call.request)["type"] == "contact.created"
        # after the overlap only the new secret signs
        await make_contact(db, org["org"])
        await worker.run(runtime, now=later(hours=25))
    last = route.calls[-1].request
    assert len(last.headers["webhook-signature"].split(" ")) == 1


async def test_a_slow_endpoint_holds_only_its_own_delivery(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    fast = await endpoint(client, settings, org, HOOK, ["contact.created"])
    await endpoint(client, settings, org, SLOW, ["contact.created"])
    runtime.settings = runtime.settings.model_copy(update={"webhook_timeout_seconds": 0.3})

    async def stall(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    await make_contact(db, org["org"])
    with respx.mock as router:
        quick = router.post(HOOK).respond(200)
        router.post(SLOW).mock(side_effect=stall)
        started = time.monotonic()
        summary = await worker.run(runtime, now=later(seconds=1))
    assert time.monotonic() - started < 2
    assert (summary.processed, summary.failed) == (1, 1)
    assert verified(fast["secret"], quick.calls[0].request)["type"] == "contact.created"
    error = await db.fetchval("select error from webhook_attempts where status_code is null")
    assert error == "no answer within 0.3 s"


class Receiver(BaseHTTPRequestHandler):
    got: list[tuple[bytes, dict[str, str]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.got.append((body, dict(self.headers)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[bytes, dict[str, str]]]]]:
    got: list[tuple[bytes, dict[str, str]]] = []
    handler = type("Handler", (Receiver,), {"got": got})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        server.server_close()


async def test_a_real_receiver_on_this_machine_gets_a_verifiable_delivery_in_local_mode_only(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
    receiver: tuple[str, list[tuple[bytes, dict[str, str]]]],
):
    url, got = receiver
    hook = await endpoint(client, settings, org, url, ["contact.created"])
    await make_contact(db, org["org"])
    assert (await worker.run(runtime, now=later(seconds=1))).processed == 1
    ((body, headers),) = got
    assert Webhook(hook["secret"]).verify(body, headers)["type"] == "contact.created"

    # In production the same address is refused when connecting: nothing is sent.
    runtime.settings = runtime.settings.model_copy(update={"webhook_egress": "public"})
    https = url.replace("http://", "https://")
    await db.execute("update webhook_endpoints set url = $1", https)
    await make_contact(db, org["org"])
    assert (await worker.run(runtime, now=later(seconds=2))).failed == 1
    assert len(got) == 1
    error = await db.fetchval("select error from webhook_attempts order by id desc limit 1")
    assert error == "refused: 127.0.0.1 resolves to 127.0.0.1, a loopback address"
    # and plain http, however it was saved, is not sent at all
    await db.execute("update webhook_endpoints set url = $1", url)
    await make_contact(db, org["org"])
    summary = await worker.run(runtime, now=later(seconds=3))
    assert summary.dead == 1 and len(got) == 1
    errors = await db.fetch("select last_error from event_deliveries where status = 'dead'")
    assert [r["last_error"] for r in errors] == ["the endpoint's URL is not https"]


async def test_an_attempt_that_could_outlive_the_lease_is_not_started(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    hook = await hook_and_contact(client, settings, db, org)
    roomy = runtime.settings
    # a lease that ends before an attempt's timeout could
    runtime.settings = roomy.model_copy(
        update={"events_lease_seconds": 2.5, "webhook_timeout_seconds": 1.0}
    )
    now = later(seconds=1)
    with respx.mock as router:
        route = router.post(HOOK).respond(200)
        short = await worker.run(runtime, now=now)
        assert (short.claimed, short.released, route.call_count) == (1, 1, 0)
        row = await db.fetchrow("select status, attempts, due_at, claim from event_deliveries")
        assert dict(row) == {"status": "pending", "attempts": 0, "due_at": now, "claim": None}
        runtime.settings = roomy
        assert (await worker.run(runtime, now=now)).processed == 1
    assert verified(hook["secret"], route.calls[0].request)["type"] == "contact.created"
    assert await db.fetchval("select attempt from webhook_attempts") == 1
