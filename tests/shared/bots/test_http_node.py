"""The HTTP node against a real receiver on this machine (local egress): signed as
webhooks are, its answer mapped into variables; a failure and a timeout take the
failure port. In production egress the same address is refused."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from shared.bots.engine import HttpAnswer
from shared.bots.host import call
from shared.bots.nodes import Http
from shared.events.signing import new_secret
from shared.runtime import Runtime

Got = list[tuple[str, bytes, dict[str, str]]]


class Receiver(BaseHTTPRequestHandler):
    got: Got

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"] or 0))
        self.got.append((self.path, body, dict(self.headers)))
        if self.path == "/slow":
            time.sleep(0.6)
        status = 500 if self.path == "/broken" else 200
        answer = json.dumps({"lead": {"score": 7, "tier": "gold"}}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, Got]]:
    got: Got = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (Receiver,), {"got": got}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()


def node(url: str, **more: Any) -> Http:
    return Http(id="h", kind="http", url=url, save={"score": "lead.score"}, **more)


async def test_a_signed_request_and_its_answer(runtime: Runtime, receiver: tuple[str, Got]) -> None:
    base, got = receiver
    secret = new_secret()
    answer = await call(
        runtime,
        node(f"{base}/ok"),
        f"{base}/ok",
        {"email": "a@b.co"},
        keys=[secret],
        msg_id="msg_bot_1",
    )
    assert answer.ok and answer.body == {"lead": {"score": 7, "tier": "gold"}}
    ((path, body, headers),) = got
    assert path == "/ok" and json.loads(body) == {"email": "a@b.co"}
    assert Webhook(secret).verify(body, headers) == {"email": "a@b.co"}


async def test_a_failure_and_a_timeout(runtime: Runtime, receiver: tuple[str, Got]) -> None:
    base, _ = receiver
    broken = await call(
        runtime, node(f"{base}/broken"), f"{base}/broken", None, keys=[], msg_id="m"
    )
    assert not broken.ok and broken.error == "HTTP 500" and broken.status == 500
    slow = await call(
        runtime,
        node(f"{base}/slow", timeout_seconds=0.2),
        f"{base}/slow",
        None,
        keys=[],
        msg_id="m",
    )
    assert slow == HttpAnswer(None, None, "no answer within 0.2 s")


async def test_production_egress_refuses_this_machine(
    runtime: Runtime, receiver: tuple[str, Got]
) -> None:
    base, got = receiver
    runtime.settings = runtime.settings.model_copy(update={"webhook_egress": "public"})
    refused = await call(runtime, node(f"{base}/ok"), f"{base}/ok", None, keys=[], msg_id="m")
    assert refused.error is not None and refused.error.startswith("refused:") and not got
