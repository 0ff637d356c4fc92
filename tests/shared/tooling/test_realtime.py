"""The local Realtime server with Supabase's own Python client: a member hears their
organization's inbox, through the real WhatsApp webhook and the inbox triggers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates
from supabase_auth import AsyncGoTrueClient

from shared.db import Connection
from shared.runtime import Runtime
from shared.settings import Settings
from tests.channels.kit import post
from tests.channels.whatsapp.kit import WhatsAppKit
from tests.shared.tooling.realtime_kit import Served, serving
from tests.support import add_member, make_org

KIT = WhatsAppKit()
SUBSCRIBED = RealtimeSubscribeStates.SUBSCRIBED
PASSWORD = "correct horse battery"


@pytest.fixture
async def served(settings: Settings, runtime: Runtime) -> AsyncIterator[Served]:
    async with serving(settings, runtime) as served:
        yield served


async def signed_in(settings: Settings, served: Served, email: str) -> tuple[UUID, str]:
    """A user signed up through the local Auth, with the access token it gave them."""
    async with httpx.AsyncClient() as http:
        auth = AsyncGoTrueClient(
            url=f"{served.url}/auth/v1",
            headers={"apikey": settings.local_key("anon")},
            http_client=http,
            auto_refresh_token=False,
        )
        session = (await auth.sign_up({"email": email, "password": PASSWORD})).session
        assert session is not None and session.user is not None
        return UUID(session.user.id), session.access_token


class Listener:
    """An official client's channel on one topic, and what it heard."""

    def __init__(self, served: Served, settings: Settings) -> None:
        self.client = AsyncRealtimeClient(
            served.realtime_url, token=settings.local_key("anon"), auto_reconnect=False
        )
        self.heard: list[dict[str, Any]] = []
        self.states: list[tuple[RealtimeSubscribeStates, Exception | None]] = []
        self.arrived = asyncio.Event()

    async def join(
        self, topic: str, token: str, *, presence: str = "", ack: bool = False
    ) -> RealtimeSubscribeStates:
        await self.client.set_auth(token)
        self.channel = self.client.channel(
            topic,
            {"config": {"private": True, "broadcast": {"ack": ack, "self": False},
                        "presence": {"key": presence, "enabled": bool(presence)}}},
        )  # fmt: skip
        self.channel.on_broadcast("*", self._heard)
        self.channel.on_presence_sync(self.arrived.set)
        await self.channel.subscribe(lambda state, error: self.states.append((state, error)))
        return self.states[-1][0]

    def _heard(self, message: dict[str, Any]) -> None:
        self.heard.append(dict(message))
        self.arrived.set()

    async def until_table(self, table: str) -> list[dict[str, Any]]:
        """What was heard until a broadcast of a change to `table` arrived."""
        async with asyncio.timeout(3):
            while not any(m["payload"]["table"] == table for m in self.heard):
                self.arrived.clear()
                await self.arrived.wait()
        return self.heard


async def test_a_member_hears_an_inbound_whatsapp_message_and_an_outsider_is_refused(
    settings: Settings, served: Served, db: Connection
):
    owner, owner_token = await signed_in(settings, served, "owner@example.com")
    outsider, outsider_token = await signed_in(settings, served, "outsider@example.com")
    org = await make_org(db, owner)
    await make_org(db, outsider)  # a member of another organization
    account = await KIT.create_account(db, org)
    topic = f"org:{org}:inbox"

    member = Listener(served, settings)
    stranger = Listener(served, settings)
    try:
        assert await member.join(topic, owner_token) == RealtimeSubscribeStates.SUBSCRIBED
        assert await stranger.join(topic, outsider_token) == RealtimeSubscribeStates.CHANNEL_ERROR
        refusal = str(stranger.states[-1][1])
        assert f"You do not have permissions to read from this Channel topic: {topic}" in refusal

        delivery = KIT.text_message(
            account, sender="351912345678", message_id="wamid.RT1", text="Olá!"
        )
        async with httpx.AsyncClient(base_url=served.url) as http:
            response = await post(http, KIT, account.id, delivery)
        assert response.status_code == 200, response.text

        heard = await member.until_table("messages")
        # One transaction, one poll: its other broadcasts (the conversation's) came with it.
        messages = [m for m in heard if m["payload"]["table"] == "messages"]
        assert len(messages) == 1
        [message] = messages
        assert message["event"] == "INSERT"
        record = message["payload"]["record"]
        assert (record["body"], record["organization_id"]) == ("Olá!", str(org))
        assert message["payload"]["operation"] == "INSERT"
        stored = await db.fetchval(
            "select id from realtime.messages where topic = $1 and payload->'record'->>'id' = $2",
            topic,
            record["id"],
        )
        assert message["meta"] == {"id": str(stored)}
        assert {m["payload"]["table"] for m in heard} == {"conversations", "messages"}
        assert stranger.heard == []
    finally:
        await member.client.close()
        await stranger.client.close()


async def test_members_broadcast_and_see_each_other_with_the_official_client(
    settings: Settings, served: Served, db: Connection
):
    ada, ada_token = await signed_in(settings, served, "ada@example.com")
    org = await make_org(db, ada)
    bob, bob_token = await signed_in(settings, served, "bob@example.com")
    await add_member(db, org, bob, "agent")
    topic = f"org:{org}:inbox"
    first, second = Listener(served, settings), Listener(served, settings)
    try:
        assert await first.join(topic, ada_token, presence="ada", ack=True) == SUBSCRIBED
        assert await second.join(topic, bob_token, presence="bob") == SUBSCRIBED
        await first.channel.track({"typing": True})
        async with asyncio.timeout(3):
            while "ada" not in second.channel.presence_state():
                second.arrived.clear()
                await second.arrived.wait()
        [ada_there] = second.channel.presence_state()["ada"]
        assert dict(ada_there)["typing"] is True

        await first.channel.send_broadcast("typing", {"conversation": "c1"})
        async with asyncio.timeout(3):
            while not second.heard:
                second.arrived.clear()
                await second.arrived.wait()
        assert second.heard == [{"event": "typing", "payload": {"conversation": "c1"}}]
        assert first.heard == []  # self: false
    finally:
        await first.client.close()
        await second.client.close()
