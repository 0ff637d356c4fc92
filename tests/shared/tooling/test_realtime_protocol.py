"""The local Realtime server's protocol, frame by frame: what the official clients send
and what they never would. Every refusal is an answer on the protocol, and one
client's garbage never disturbs another client."""

from __future__ import annotations

import asyncio
import json
import time
from uuid import UUID

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from shared.auth import mint_access_token
from shared.db import Connection
from shared.settings import Settings
from shared.tooling import realtime_channels
from shared.tooling.realtime_protocol import MAX_FRAME_BYTES
from tests.shared.tooling import realtime_kit as kit
from tests.shared.tooling.realtime_kit import Raw, Served, raw
from tests.support import make_org, make_user

PUBLIC = {"private": False, "broadcast": {"self": False, "ack": False}}
UNREADABLE = "You do not have permissions to read from this Channel topic"
PRIVATE = {"private": True, "broadcast": {"self": False, "ack": False}}


pytestmark = pytest.mark.asyncio(loop_scope="module")
settings, runtime, db, served = kit.settings, kit.runtime, kit.db, kit.served  # one world


@pytest.fixture(scope="module")
def anon(settings: Settings) -> str:
    return settings.local_key("anon")


def token(settings: Settings, user: UUID, ttl: int = 3600) -> str:
    return mint_access_token(settings, user_id=user, email=None, ttl_seconds=ttl)


async def member_and_topic(db: Connection) -> tuple[UUID, str]:
    user = await make_user(db)
    return user, f"org:{await make_org(db, user)}:inbox"


async def alive(client: Raw) -> None:
    """The socket still answers a heartbeat."""
    ref = await client.send("phoenix", "heartbeat", {})
    assert await client.reply_to(ref) == {"status": "ok", "response": {}}


@pytest.mark.parametrize("vsn", ["1.0.0", "2.0.0"])
async def test_heartbeats_are_answered_on_the_phoenix_topic(served: Served, anon: str, vsn: str):
    async with raw(served, anon, vsn) as client:
        ref = await client.send("phoenix", "heartbeat", {})
        frame = await client.recv()
        assert (frame["topic"], frame["event"], frame["ref"]) == ("phoenix", "phx_reply", ref)
        assert frame["payload"] == {"status": "ok", "response": {}}
        if vsn == "1.0.0":
            assert "join_ref" not in frame  # Phoenix's V1 serializer has no join_ref


async def test_the_socket_needs_a_key_the_project_issued(served: Served, anon: str):
    base = f"{served.realtime_url}/websocket"
    for url, status, message in (
        (f"{base}?vsn=1.0.0", 401, "API key is missing"),
        (f"{base}?apikey=not.a.jwt&vsn=1.0.0", 401, "The access token is invalid"),
        (f"{base}?apikey={anon}&vsn=3.0.0", 400, "Unsupported vsn"),
        (f"{served.realtime_url}/elsewhere?apikey={anon}", 404, "Not found"),
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url):
                pass
        assert refused.value.response.status_code == status
        assert message in json.loads(refused.value.response.body or b"{}")["error"]


async def test_plain_http_on_the_endpoint_is_told_to_upgrade(served: Served):
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{served.realtime_url}/websocket")
    assert answer.status_code == 400
    assert answer.json() == {"error": "The Realtime endpoint takes WebSocket connections only"}


async def test_garbage_gets_a_protocol_error_and_the_socket_and_others_live_on(
    served: Served, anon: str, db: Connection
):
    async with raw(served, anon) as bystander, raw(served, anon) as noisy:
        assert (await bystander.join("realtime:noise", PUBLIC))["status"] == "ok"
        garbage: list[str | bytes] = [
            "not json",
            "[1, 2, 3]",  # a vsn 2 array on a vsn 1 socket
            json.dumps({"topic": 7, "event": "phx_join", "payload": {}, "ref": "1"}),
            json.dumps({"topic": "realtime:x", "event": "", "payload": {}, "ref": "1"}),
            json.dumps({"topic": "realtime:x", "event": "phx_join", "payload": [], "ref": "1"}),
            json.dumps({"topic": "realtime:x", "event": "e", "payload": {}, "ref": {"a": 1}}),
            '{"topic": "x", "event": "e", "payload": {"n": NaN}, "ref": "1"}',
            "[" * 10_000 + "]" * 10_000,
            b"\x03binary on a vsn 1 socket",
        ]
        for frame in garbage:
            await noisy.ws.send(frame)
            answer = await noisy.recv()
            assert (answer["topic"], answer["event"], answer["ref"]) == (
                "phoenix",
                "phx_reply",
                None,
            )
            assert answer["payload"]["status"] == "error"
            assert answer["payload"]["response"]["reason"].startswith("MalformedMessage: ")
        await alive(noisy)
        await db.execute("select realtime.send('{\"n\": 1}', 'after', 'noise', false)")
        heard = await bystander.recv()
        assert (heard["event"], heard["payload"]["event"]) == ("broadcast", "after")


async def test_unknown_events_and_topics_not_joined_are_refused(served: Served, anon: str):
    async with raw(served, anon) as client:
        assert await client.reply_to(await client.send("realtime:unknown", "broadcast", {})) == {
            "status": "error",
            "response": {"reason": "unmatched topic"},
        }
        assert (await client.join("realtime:unknown", PUBLIC))["status"] == "ok"
        for event, reason in (
            ("dance", "UnknownEvent: 'dance' is not a Realtime event"),
            ("postgres_changes", "UnknownEvent: 'postgres_changes' is not a Realtime event"),
        ):
            answer = await client.reply_to(await client.send("realtime:unknown", event, {}))
            assert answer == {"status": "error", "response": {"reason": reason}}
        for config, reason in (
            ({"private": "maybe"}, "InvalidJoinPayload: config.private must be a boolean"),
            ({"broadcast": []}, "InvalidJoinPayload: config.broadcast must be an object"),
            ({"postgres_changes": [{"event": "*", "schema": "public"}]}, "InvalidJoinPayload: "),
        ):
            answer = await client.join("realtime:other", config)
            assert answer["status"] == "error"
            assert answer["response"]["reason"].startswith(reason)
        answer = await client.join("realtime:", PUBLIC)
        assert answer["response"] == {"reason": "TopicNameRequired: You must provide a topic name"}
        await alive(client)


async def test_private_joins_need_a_member_token_that_is_valid(
    served: Served, anon: str, settings: Settings, db: Connection
):
    user, topic = await member_and_topic(db)
    expired = mint_access_token(
        settings, user_id=user, email=None, ttl_seconds=60, now=int(time.time()) - 70
    )
    async with raw(served, anon) as client:
        for credential, reason in (
            (None, f"Unauthorized: {UNREADABLE}: {topic}"),
            (expired, "InvalidJWTToken: Token has expired 10 seconds ago"),
            ("garbage", "MalformedJWT: The token provided is not a valid JWT"),
        ):
            answer = await client.join(f"realtime:{topic}", PRIVATE, credential)
            assert answer["status"] == "error"
            assert answer["response"]["reason"] in (reason, reason.replace("10 sec", "11 sec"))
        assert (await client.join(f"realtime:{topic}", PUBLIC))["status"] == "ok"  # public: open
        answer = await client.join(f"realtime:{topic}", PRIVATE, token(settings, user))
        assert answer == {"status": "ok", "response": {"postgres_changes": []}}


async def test_an_oversized_frame_closes_only_its_own_socket(served: Served, anon: str):
    async with raw(served, anon) as bystander, raw(served, anon) as big:
        assert (await bystander.join("realtime:big", PUBLIC))["status"] == "ok"
        assert (await big.join("realtime:big", PUBLIC))["status"] == "ok"
        payload = {"type": "broadcast", "event": "big", "payload": {"x": "a" * MAX_FRAME_BYTES}}
        await big.send("realtime:big", "broadcast", payload)
        with pytest.raises(ConnectionClosedError) as closed:
            await big.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        assert str(MAX_FRAME_BYTES) in closed.value.rcvd.reason
        await alive(bystander)


async def test_leaving_stops_the_broadcasts(served: Served, anon: str, db: Connection):
    async with raw(served, anon) as client, raw(served, anon) as watcher:
        for joining in (client, watcher):
            assert (await joining.join("realtime:leave", PUBLIC))["status"] == "ok"
        await db.execute("select realtime.send('{}', 'one', 'leave', false)")
        assert (await client.recv())["payload"]["event"] == "one"
        left = await client.reply_to(await client.send("realtime:leave", "phx_leave", {}))
        assert left == {"status": "ok", "response": {}}
        await db.execute("select realtime.send('{}', 'two', 'leave', false)")
        assert (await watcher.recv())["payload"]["event"] == "one"
        assert (await watcher.recv())["payload"]["event"] == "two"  # delivered by now
        ref = await client.send("phoenix", "heartbeat", {})
        assert (await client.recv())["ref"] == ref  # nothing came before the answer
        assert await client.reply_to(await client.send("realtime:leave", "phx_leave", {})) == {
            "status": "error",
            "response": {"reason": "unmatched topic"},
        }


async def test_a_socket_holds_at_most_a_hundred_channels(served: Served, anon: str):
    async with raw(served, anon) as client:
        refs = [
            await client.send(f"realtime:many-{n}", "phx_join", {"config": PUBLIC})
            for n in range(101)
        ]
        answers = [await client.reply_to(ref) for ref in refs]
        assert [a["status"] for a in answers] == ["ok"] * 100 + ["error"]
        assert answers[-1]["response"] == {"reason": "ChannelRateLimitReached: Too many channels"}
        left = await client.reply_to(await client.send("realtime:many-0", "phx_leave", {}))
        assert left["status"] == "ok"
        assert (await client.join("realtime:many-100", PUBLIC))["status"] == "ok"


async def test_replication_ready_is_announced_once_database_broadcasts_flow(
    served: Served, anon: str
):
    async with raw(served, anon, "2.0.0") as client:
        config = {**PUBLIC, "broadcast": {"replication_ready": True}}
        assert (await client.join("realtime:ready", config))["status"] == "ok"
        system = await client.recv()
        assert (system["topic"], system["event"], system["ref"]) == (
            "realtime:ready",
            "system",
            None,
        )
        assert system["payload"] == {
            "channel": "ready",
            "extension": "system",
            "status": "ok",
            "message": "Replication connection established",
        }


class Stalled:
    """A client that never reads: every send waits."""

    def __init__(self) -> None:
        self.sent: list[object] = []

    async def send_text(self, data: str) -> None:
        self.sent.append(data)
        await asyncio.Event().wait()


async def test_a_client_too_far_behind_is_closed_and_never_waited_for(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(realtime_channels, "OUTBOX_FRAMES", 3)
    socket = realtime_channels.Socket(None, Stalled(), "1.0.0", None, None)  # type: ignore[arg-type]
    for n in range(5):
        socket.push(f"frame {n}")  # never blocks, however far behind the client is
    assert socket.closing == (1013, "Too far behind: the server stopped queueing for this client")
    assert socket.outbox.qsize() == 1  # what it had not read is dropped: the close is next
