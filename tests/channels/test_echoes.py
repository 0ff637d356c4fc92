"""Echoes — what the business sent, reported back by the provider — for every channel
that has them: a reply sent from another tool is recorded as outbound, and the echo of
a reply sent through send-message never shows it twice, whichever arrives first."""

from __future__ import annotations

import httpx
import pytest
import respx

from shared.db import Connection
from shared.settings import Settings
from tests.channels.kit import SENT_ID, Account, Kit, counts, post
from tests.channels.kits import KITS
from tests.support import auth, member

ECHOES = [kit for kit in KITS.values() if kit.echoes]
SENDER = "16315550003"


def channel_id(kit: Kit) -> str:
    return kit.channel


async def messages(db: Connection) -> list[dict[str, object]]:
    rows = await db.fetch(
        "select direction::text, sender_type::text, sender_id, status::text, body,"
        " provider_message_id, metadata ? 'echo' as echo from messages order by created_at"
    )
    return [dict(r) for r in rows]


@pytest.mark.parametrize("kit", ECHOES, ids=channel_id)
async def test_a_reply_sent_from_another_tool_is_recorded_as_outbound_and_not_unread(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    question = kit.text_message(account, sender=SENDER, message_id="5101", text="Open today?")
    await post(client, kit, account.id, question)
    before = await db.fetchrow("select unread_count, last_inbound_at from conversations")

    echo = kit.echo(account, recipient=SENDER, message_id="mid.elsewhere-1", text="Until 7pm")
    assert (await post(client, kit, account.id, echo)).json()["processed"] == 1
    assert (await post(client, kit, account.id, echo)).json()["duplicates"] == 1

    inbound, reply = await messages(db)
    assert inbound["direction"] == "inbound"
    assert reply == {
        "direction": "outbound",
        "sender_type": "user",
        "sender_id": None,  # sent by someone outside ConnectGain
        "status": "sent",
        "body": "Until 7pm",
        "provider_message_id": "mid.elsewhere-1",
        "echo": True,
    }
    after = await db.fetchrow("select unread_count, last_inbound_at from conversations")
    assert dict(after) == dict(before), "an echo is not the contact writing"
    state = await counts(db)
    assert (state["contacts"], state["conversations"]) == (1, 1)


@pytest.mark.parametrize("kit", ECHOES, ids=channel_id)
async def test_an_echo_to_someone_new_starts_their_conversation_without_unread(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    echo = kit.echo(account, recipient=SENDER, message_id="mid.elsewhere-2", text="Hello!")
    assert (await post(client, kit, account.id, echo)).json()["processed"] == 1
    conversation = await db.fetchrow(
        "select unread_count, last_inbound_at, last_message_at from conversations"
    )
    assert conversation["unread_count"] == 0
    assert conversation["last_inbound_at"] is None, "the contact has not written: no window"
    assert conversation["last_message_at"] is not None
    identity = await db.fetchval("select external_id from contact_identities")
    assert identity == kit.identity(SENDER)


async def reply_through_send_message(
    client: httpx.AsyncClient, settings: Settings, db: Connection, account: Account
) -> httpx.Response:
    agent = await member(db, account.organization_id, "agent")
    conversation = await db.fetchval(
        "update conversations set last_inbound_at = now() returning id"
    )
    return await client.post(
        "/functions/v1/send-message",
        json={"conversation_id": str(conversation), "text": "On its way"},
        headers=auth(settings, agent),
    )


@pytest.mark.parametrize("order", ["echo_after_the_send", "echo_during_the_send"])
@pytest.mark.parametrize("kit", ECHOES, ids=channel_id)
async def test_the_echo_of_our_own_reply_never_shows_it_twice(
    client: httpx.AsyncClient,
    kit: Kit,
    account: Account,
    db: Connection,
    settings: Settings,
    provider: respx.MockRouter,
    order: str,
):
    question = kit.text_message(account, sender=SENDER, message_id="5201", text="Tracking?")
    await post(client, kit, account.id, question)
    echo = kit.echo(account, recipient=SENDER, message_id=SENT_ID, text="On its way")
    route = kit.mock_send(provider)
    if order == "echo_during_the_send":
        answer = route.return_value
        assert answer is not None

        async def echo_arrives_first(request: httpx.Request) -> httpx.Response:
            # The provider's echo overtakes its own answer to our send.
            assert (await post(client, kit, account.id, echo)).json()["processed"] == 1
            kept = await db.fetch("select status::text from messages where direction = 'outbound'")
            assert sorted(r["status"] for r in kept) == ["sending", "sent"]
            return answer

        route.side_effect = echo_arrives_first

    response = await reply_through_send_message(client, settings, db, account)
    assert response.status_code == 201, response.text
    assert route.call_count == 1
    if order == "echo_after_the_send":
        assert (await post(client, kit, account.id, echo)).json()["processed"] == 1

    replies = [m for m in await messages(db) if m["direction"] == "outbound"]
    assert len(replies) == 1
    gone = await db.fetch(
        "select payload -> 'old_record' ->> 'provider_message_id' as provider_message_id"
        " from realtime.messages where event = 'DELETE' and topic = $1",
        f"org:{account.organization_id}:inbox",
    )
    # The inbox was shown the echo's copy only if the echo came first: then it is withdrawn.
    expected = [SENT_ID] if order == "echo_during_the_send" else []
    assert [r["provider_message_id"] for r in gone] == expected
    assert str(replies[0]["sender_id"]) == response.json()["sender_id"]
    assert (replies[0]["provider_message_id"], replies[0]["echo"]) == (SENT_ID, False)
    assert await db.fetchval("select unread_count from conversations") == 1
