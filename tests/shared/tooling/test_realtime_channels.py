"""Channels on the local Realtime server: broadcasts between clients (self, ack, both
serializers, supabase-js's binary frames), the INSERT policy on private sends, and
tokens: a refresh is checked again, an expired token closes the channel."""

from __future__ import annotations

import json
import time
from typing import Any
from uuid import UUID

import pytest

from shared.auth import mint_access_token
from shared.db import Connection
from shared.settings import Settings
from tests.shared.tooling import realtime_kit as kit
from tests.shared.tooling.realtime_kit import Raw, Served, raw
from tests.support import make_org, make_user

pytestmark = pytest.mark.asyncio(loop_scope="module")
settings, runtime, db, served = kit.settings, kit.runtime, kit.db, kit.served  # one world


def config(*, private: bool = False, self: bool = False, ack: bool = False) -> dict[str, Any]:
    return {"private": private, "broadcast": {"self": self, "ack": ack}}


def broadcast(event: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": "broadcast", "event": event, "payload": payload}


def user_broadcast_push(join_ref: str, ref: str, topic: str, event: str, payload: Any) -> bytes:
    """A broadcast as supabase-js (vsn 2.0.0) sends it: kind 3, JSON-encoded payload."""
    fields = [join_ref.encode(), ref.encode(), topic.encode(), event.encode(), b""]
    return bytes([3, *map(len, fields), 1]) + b"".join(fields) + json.dumps(payload).encode()


def user_broadcast(data: bytes) -> dict[str, Any]:
    """A kind 4 frame read as supabase-js reads it."""
    assert data[0] == 4
    sizes, encoding, offset = data[1:4], data[4], 5
    topic, event, meta = (data[offset : (offset := offset + n)].decode() for n in sizes)
    body = data[offset:]
    frame = {"topic": topic, "event": event, "payload": json.loads(body) if encoding else body}
    return frame | ({"meta": json.loads(meta)} if meta else {})


async def quiet(client: Raw) -> None:
    """Nothing is waiting for `client`: the next frame is its heartbeat's answer."""
    ref = await client.send("phoenix", "heartbeat", {})
    assert (await client.recv())["ref"] == ref


async def test_public_broadcasts_reach_the_others_and_self_and_ack_as_asked(
    served: Served, settings: Settings
):
    anon = settings.local_key("anon")
    async with raw(served, anon) as alice, raw(served, anon) as bob, raw(served, anon) as carol:
        assert (await alice.join("realtime:lobby", config()))["status"] == "ok"
        assert (await bob.join("realtime:lobby", config(self=True, ack=True)))["status"] == "ok"
        assert (await carol.join("realtime:elsewhere", config()))["status"] == "ok"

        ref = await alice.send("realtime:lobby", "broadcast", broadcast("hi", {"n": 1}))
        heard = await bob.recv()
        assert heard == {
            "topic": "realtime:lobby",
            "event": "broadcast",
            "payload": broadcast("hi", {"n": 1}),
            "ref": None,
        }
        assert ref  # alice asked for no ack: no answer, and no echo either
        await quiet(alice)

        ref = await bob.send("realtime:lobby", "broadcast", broadcast("back", {"n": 2}))
        own, ack = await bob.recv(), await bob.recv()
        assert own["payload"] == broadcast("back", {"n": 2})  # self
        assert (ack["event"], ack["ref"], ack["payload"]) == (
            "phx_reply",
            ref,
            {"status": "ok", "response": {}},
        )
        assert (await alice.recv())["payload"] == broadcast("back", {"n": 2})
        await quiet(carol)  # another topic heard nothing


async def test_supabase_js_binary_broadcasts_cross_serializers(
    served: Served, settings: Settings, db: Connection
):
    anon = settings.local_key("anon")
    async with raw(served, anon, "2.0.0") as js, raw(served, anon, "1.0.0") as py:
        joined = await js.join("realtime:mixed", config(self=True))
        assert joined == {"status": "ok", "response": {"postgres_changes": []}}
        assert (await py.join("realtime:mixed", config()))["status"] == "ok"

        await js.ws.send(user_broadcast_push("1", "2", "realtime:mixed", "typing", {"who": "js"}))
        assert user_broadcast((await js.recv())["binary"]) == {
            "topic": "realtime:mixed",
            "event": "typing",
            "payload": {"who": "js"},
        }
        assert (await py.recv())["payload"] == broadcast("typing", {"who": "js"})

        await db.execute("""select realtime.send('{"a": [1, 2]}', 'saved', 'mixed', false)""")
        from_db = user_broadcast((await js.recv())["binary"])
        stored = await db.fetchval("select id from realtime.messages where event = 'saved'")
        assert from_db == {
            "topic": "realtime:mixed",
            "event": "saved",
            "payload": {"a": [1, 2], "id": str(stored)},  # realtime.send adds the id
            "meta": {"id": str(stored)},
        }
        assert (await py.recv())["payload"] == {
            **broadcast("saved", {"a": [1, 2], "id": str(stored)}),
            "meta": {"id": str(stored)},
        }
        # A private row never reaches a public channel of the same name.
        await db.execute("select realtime.send('{}', 'secret', 'mixed', true)")
        await quiet(py)


async def test_private_sends_are_checked_against_the_insert_policy(
    served: Served, settings: Settings, db: Connection
):
    owner = await make_user(db)
    org = await make_org(db, owner)
    inbox = f"realtime:org:{org}:inbox"
    # A topic members may read and not write, in this test's database only.
    await db.execute(
        "create policy test_read_only_notices on realtime.messages for select to authenticated"
        " using (realtime.topic() = 'notices')"
    )
    token = mint_access_token(settings, user_id=owner, email=None)
    anon = settings.local_key("anon")
    async with raw(served, anon) as sender, raw(served, anon) as listener:
        for client in (sender, listener):
            for topic in (inbox, "realtime:notices"):
                joined = await client.join(topic, config(private=True, ack=True), token)
                assert joined["status"] == "ok", joined
        ref = await sender.send(inbox, "broadcast", broadcast("typing", {"who": "owner"}))
        assert await sender.reply_to(ref) == {"status": "ok", "response": {}}
        assert (await listener.recv())["payload"] == broadcast("typing", {"who": "owner"})

        ref = await sender.send("realtime:notices", "broadcast", broadcast("spam", {}))
        refused = await sender.reply_to(ref)
        assert refused == {
            "status": "error",
            "response": {
                "reason": "Unauthorized: You do not have permissions to write to this Channel"
                " topic: notices"
            },
        }
        track = {"type": "presence", "event": "track", "payload": {"here": True}}
        refused = await sender.reply_to(await sender.send("realtime:notices", "presence", track))
        assert refused["response"]["reason"] == (
            "Unauthorized: You do not have permissions to track presence on this Channel"
            " topic: notices"
        )
        tracked = await sender.reply_to(await sender.send(inbox, "presence", track))
        assert tracked["status"] == "ok"
        diff = await listener.recv()  # members may read presence on the inbox
        assert (diff["event"], diff["payload"]["leaves"]) == ("presence_diff", {})
        await quiet(listener)


async def system_and_close(client: Raw, topic: str, seconds: float = 2.0) -> str:
    """The end of a channel as Supabase ends one: a system error, then phx_close."""
    system, close = await client.recv(seconds), await client.recv()
    assert (system["topic"], system["event"], system["ref"]) == (topic, "system", None)
    assert system["payload"]["extension"] == "system"
    assert system["payload"]["status"] == "error"
    assert system["payload"]["channel"] == topic.removeprefix("realtime:")
    assert (close["topic"], close["event"], close["payload"]) == (topic, "phx_close", {})
    return str(system["payload"]["message"])


def token_for(settings: Settings, user: UUID, **options: Any) -> str:
    return mint_access_token(settings, user_id=user, email=None, **options)


async def test_a_refreshed_token_is_checked_again(
    served: Served, settings: Settings, db: Connection
):
    member, outsider = await make_user(db), await make_user(db)
    org = await make_org(db, member)
    await make_org(db, outsider)
    name = f"org:{org}:inbox"
    inbox, token = f"realtime:{name}", token_for(settings, member)
    async with raw(served, settings.local_key("anon")) as client:
        assert (await client.join(inbox, config(private=True), token))["status"] == "ok"
        await client.send(inbox, "access_token", {"access_token": token})  # the same: nothing
        await quiet(client)
        await client.send(inbox, "access_token", {"access_token": token_for(settings, outsider)})
        message = await system_and_close(client, inbox)
        assert message == f"You do not have permissions to read from this Channel topic: {name}"
        answer = await client.reply_to(await client.send(inbox, "broadcast", broadcast("x", {})))
        assert answer["response"] == {"reason": "unmatched topic"}

        assert (await client.join(inbox, config(private=True), token))["status"] == "ok"
        fresh = token_for(settings, member, ttl_seconds=7200)
        await client.send(inbox, "access_token", {"access_token": fresh})  # still a member
        await quiet(client)
        expired = token_for(settings, member, ttl_seconds=60, now=int(time.time()) - 65)
        await client.send(inbox, "access_token", {"access_token": expired})
        assert (await system_and_close(client, inbox)).startswith("Token has expired ")


async def test_a_channel_closes_when_its_token_expires(
    served: Served, settings: Settings, db: Connection
):
    user = await make_user(db)
    inbox = f"realtime:org:{await make_org(db, user)}:inbox"
    # It lives 2–3 s: long enough for the join on a loaded machine, short for the wait.
    token = token_for(settings, user, ttl_seconds=3, now=int(time.time()))
    async with raw(served, settings.local_key("anon")) as client:
        assert (await client.join(inbox, config(private=True), token))["status"] == "ok"
        assert (await system_and_close(client, inbox, 5.0)).startswith("Token has expired ")


async def test_presence_is_tracked_diffed_and_left_as_phoenix_presence_does(
    served: Served, settings: Settings
):
    anon = settings.local_key("anon")
    with_presence = {**config(), "presence": {"enabled": True, "key": "ada"}}
    async with raw(served, anon) as ada, raw(served, anon, "2.0.0") as bob:
        joined = await ada.join("realtime:desk", with_presence)
        assert joined["status"] == "ok"
        assert (await ada.recv())["event"] == "presence_state"  # empty so far
        ref = await ada.send(
            "realtime:desk",
            "presence",
            {"type": "presence", "event": "track", "payload": {"on": 1}},
        )
        diff = await ada.recv()  # the tracker hears its own join
        assert diff["event"] == "presence_diff"
        [meta] = diff["payload"]["joins"]["ada"]["metas"]
        assert meta["on"] == 1 and meta["phx_ref"]
        assert await ada.reply_to(ref) == {"status": "ok", "response": {}}

        joined = await bob.join("realtime:desk", {**with_presence, "presence": {"enabled": True}})
        assert joined["status"] == "ok"
        state = await bob.recv()
        assert (state["event"], state["payload"]) == ("presence_state", {"ada": {"metas": [meta]}})

        await ada.send(
            "realtime:desk",
            "presence",
            {"type": "presence", "event": "track", "payload": {"on": 2}},
        )
        moved = (await bob.recv())["payload"]
        assert moved["leaves"] == {"ada": {"metas": [meta]}}
        [new] = moved["joins"]["ada"]["metas"]
        assert (new["on"], new["phx_ref_prev"]) == (2, meta["phx_ref"])

        bad = await ada.send("realtime:desk", "presence", {"event": "track", "payload": [1]})
        assert (await ada.reply_to(bad))["response"] == {
            "reason": "Presence track payload must be a map"
        }
    async with raw(served, anon) as carol:
        assert (await carol.join("realtime:desk", with_presence))["status"] == "ok"
        assert (await carol.recv())["payload"] == {}  # ada's socket closed: she left
