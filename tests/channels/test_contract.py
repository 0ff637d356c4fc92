"""Behaviours every channel shares, written once and run for each of them."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from uuid import uuid4

import httpx
import pytest

from shared.db import Connection
from tests.channels.kit import Account, Kit, counts, post

SENDER = "16315550001"


async def test_a_message_lands_once_however_often_it_is_delivered(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    delivery = kit.text_message(account, sender=SENDER, message_id="5001", text="Hello there")
    first = await post(client, kit, account.id, delivery)
    assert first.status_code == 200, first.text
    assert first.json()["processed"] == 1
    again = await post(client, kit, account.id, kit.redelivered(account, delivery))
    assert again.status_code == 200
    assert again.json()["duplicates"] == 1
    assert await counts(db) == {
        "inbound_events": 1,
        "contacts": 1,
        "contact_identities": 1,
        "conversations": 1,
        "messages": 1,
    }
    message = await db.fetchrow("select body, direction::text, status::text from messages")
    assert dict(message) == {"body": "Hello there", "direction": "inbound", "status": "received"}


async def test_concurrent_deliveries_of_one_message_store_it_once(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    delivery = kit.text_message(account, sender=SENDER, message_id="5002", text="race")
    answers = await asyncio.gather(
        *(post(client, kit, account.id, kit.redelivered(account, delivery)) for _ in range(4))
    )
    assert all(a.status_code == 200 for a in answers)
    assert (await counts(db))["messages"] == 1


async def test_a_repeat_sender_stays_one_contact_in_one_open_conversation(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    for n in ("5003", "5004"):
        await post(
            client, kit, account.id, kit.text_message(account, sender=SENDER, message_id=n, text=n)
        )
    state = await counts(db)
    assert (state["contacts"], state["conversations"], state["messages"]) == (1, 1, 2)
    assert await db.fetchval("select unread_count from conversations") == 2

    await db.execute("update conversations set status = 'resolved'")
    await post(
        client,
        kit,
        account.id,
        kit.text_message(account, sender=SENDER, message_id="5005", text="again"),
    )
    assert await db.fetchval("select count(*) from conversations") == 2
    assert await db.fetchval("select count(*) from conversations where status = 'open'") == 1


async def test_each_message_is_one_broadcast_that_carries_its_conversation(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    """The inbox learns of a new message and its conversation's new state (unread count,
    last message, reopening) from one broadcast, in realtime.broadcast_changes' payload
    with `conversation` added; the conversation is not broadcast a second time."""
    for n in ("5020", "5021"):
        await post(
            client, kit, account.id, kit.text_message(account, sender=SENDER, message_id=n, text=n)
        )
    sent = await db.fetch(
        "select topic, event, private, payload from realtime.messages order by inserted_at, id"
    )
    stored = await db.fetch(
        "select m.id::text, m.body, c.id::text as conversation, c.unread_count, c.last_message_at"
        " from messages m join conversations c on c.id = m.conversation_id order by m.created_at"
    )
    assert [(r["topic"], r["event"], r["private"]) for r in sent] == [
        (f"org:{account.organization_id}:inbox", "INSERT", True)
    ] * 2
    for broadcast, row, unread in zip(sent, stored, (1, 2), strict=True):
        payload = broadcast["payload"]
        assert {k: payload[k] for k in ("operation", "table", "schema", "old_record")} == {
            "operation": "INSERT",
            "table": "messages",
            "schema": "public",
            "old_record": None,
        }
        assert (payload["record"]["id"], payload["record"]["body"]) == (row["id"], row["body"])
        conversation = payload["conversation"]
        assert (conversation["id"], conversation["unread_count"]) == (row["conversation"], unread)
        assert conversation["status"] == "open"
    # The setting that held the conversation's own broadcast back is not left behind.
    await db.execute("update conversations set status = 'resolved'")
    assert (
        await db.fetchval(
            "select count(*) from realtime.messages where payload ->> 'table' = 'conversations'"
        )
        == 1
    )


async def test_a_new_contacts_last_activity_is_its_first_message(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    await post(
        client,
        kit,
        account.id,
        kit.text_message(account, sender=SENDER, message_id="5030", text="hi"),
    )
    row = await db.fetchrow(
        "select c.last_activity_at, m.created_at as message_at from contacts c, messages m"
    )
    assert row["last_activity_at"] == row["message_at"]


async def test_an_exact_replay_of_a_delivery_stores_nothing_twice(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    delivery = kit.text_message(account, sender=SENDER, message_id="5010", text="once")
    assert (await post(client, kit, account.id, delivery)).status_code == 200
    stored = await counts(db)
    replay = await post(client, kit, account.id, delivery)
    if kit.one_time_tokens:  # its signed token was seen: refused
        assert replay.status_code == 401
        assert replay.json()["error"]["code"] == "invalid_signature"
    else:  # only the body is signed: a duplicate, acknowledged
        assert replay.status_code == 200
        assert replay.json()["duplicates"] == 1
    assert await counts(db) == stored


@pytest.mark.parametrize("tamper", ["forged", "unsigned"])
async def test_a_forged_or_unsigned_delivery_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection, tamper: str
):
    delivery = kit.text_message(account, sender=SENDER, message_id="5006", text="evil")
    bad = kit.forged(delivery) if tamper == "forged" else kit.unsigned(delivery)
    response = await post(client, kit, account.id, bad)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert set((await counts(db)).values()) == {0}


async def test_a_signature_made_with_a_rotated_secret_is_refused(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    """The server keeps the account it read for the next deliveries; a rotation takes
    effect at once all the same: the new secret is accepted, the old one refused."""

    async def rotate(to: str) -> Account:
        secrets = {k: f"{v}-{to}" for k, v in account.secrets.items()}
        await db.execute(
            "update private.channel_credentials set secrets = $2 where channel_account_id = $1",
            account.id,
            secrets,
        )
        return replace(account, secrets=secrets)

    async def send(signer: Account, message_id: str) -> int:
        delivery = kit.text_message(signer, sender=SENDER, message_id=message_id, text=message_id)
        return (await post(client, kit, account.id, delivery)).status_code

    assert await send(account, "5007") == 200  # the account is now known to the server
    first = await rotate("first")
    assert await send(first, "5017") == 200  # refused by the one known: read again
    await rotate("second")
    assert await send(first, "5027") == 401  # verified by the one known, stale: read again
    assert await send(account, "5037") == 401
    stored = await db.fetch("select body from messages")
    assert [row["body"] for row in stored if row["body"] != "5017"] == ["5007"]


async def test_an_account_changed_or_gone_since_its_last_delivery_is_read_again(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    first = kit.text_message(account, sender=SENDER, message_id="5040", text="first")
    assert (await post(client, kit, account.id, first)).status_code == 200
    # Renamed (its row changed, its secrets not): the delivery still lands.
    await db.execute("update channel_accounts set name = 'Renamed' where id = $1", account.id)
    second = kit.text_message(account, sender=SENDER, message_id="5041", text="second")
    assert (await post(client, kit, account.id, second)).status_code == 200
    await db.execute("delete from channel_accounts where id = $1", account.id)
    third = kit.text_message(account, sender=SENDER, message_id="5042", text="third")
    assert (await post(client, kit, account.id, third)).status_code == 404


async def test_an_unknown_account_is_a_404_and_nothing_is_stored(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    delivery = kit.text_message(account, sender=SENDER, message_id="5008", text="hi")
    for account_id in (uuid4(), "not-a-uuid"):
        response = await post(client, kit, account_id, delivery)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert set((await counts(db)).values()) == {0}


async def test_a_signed_body_that_is_not_what_the_provider_sends_is_kept_raw_and_failed(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    deliveries = kit.malformed(account)
    for delivery in deliveries:
        response = await post(client, kit, account.id, delivery)
        assert response.status_code == 200, delivery.body
        assert response.json() == {
            "received": 1,
            "duplicates": 0,
            "processed": 0,
            "ignored": 0,
            "failed": 1,
        }
    kept = await db.fetch(
        "select event_type, status, raw, last_error, next_attempt_at = 'infinity' as final"
        " from inbound_events"
    )
    assert sorted(row["raw"] for row in kept) == sorted(d.body for d in deliveries)
    for row in kept:
        assert (row["event_type"], row["status"], row["final"]) == ("unreadable", "failed", True)
        assert row["last_error"].startswith("The delivery could not be read: ")
    assert (await counts(db))["messages"] == 0


async def test_another_channels_account_is_not_found(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    other = "telegram" if kit.channel != "telegram" else "whatsapp"
    delivery = kit.text_message(account, sender=SENDER, message_id="5009", text="hi")
    response = await client.post(
        f"/functions/v1/{other}-webhook/{account.id}",
        content=delivery.body,
        headers=delivery.headers,
    )
    assert response.status_code == 404
