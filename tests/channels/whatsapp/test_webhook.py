"""WhatsApp's own events, through the real webhook into the database."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import httpx
import pytest

from shared.db import Connection
from tests.channels.kit import post
from tests.channels.whatsapp.kit import WhatsAppKit
from tests.fixtures import load, raw
from tests.support import make_org, make_user

KIT = WhatsAppKit()


@pytest.fixture
async def account(db: Connection):
    return await KIT.create_account(db, await make_org(db, await make_user(db)))


async def deliver(client: httpx.AsyncClient, account: Any, body: bytes) -> httpx.Response:
    return await post(client, KIT, account.id, KIT.signed_raw(account, body))


async def test_meta_verification_echoes_the_challenge(client: httpx.AsyncClient, account: Any):
    url = f"/functions/v1/whatsapp-webhook/{account.id}"
    ok = await client.get(
        url,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": "verify-me-123",
            "hub.challenge": "1158201444",
        },
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    wrong = await client.get(
        url, params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}
    )
    assert wrong.status_code == 403


EXPECTED: dict[str, dict[str, Any]] = {
    "text_message": {"content_type": "text", "body": "Hi! Do you ship to Lisbon?"},
    "image_message": {
        "content_type": "image",
        "body": "This one, in blue",
        "attachment": {"type": "image", "media_id": "1003383421387256", "mime_type": "image/jpeg"},
    },
    "audio_message": {
        "content_type": "audio",
        "body": None,
        "attachment": {"type": "audio", "media_id": "1258331318428376"},
    },
    "video_message": {
        "content_type": "video",
        "attachment": {"media_id": "1496316997917412", "mime_type": "video/mp4"},
    },
    "document_message": {
        "content_type": "document",
        "body": "Invoice March",
        "attachment": {"filename": "invoice-0342.pdf", "mime_type": "application/pdf"},
    },
    "sticker_message": {"content_type": "sticker", "attachment": {"media_id": "1162744464617402"}},
    "location_message": {
        "content_type": "location",
        "body": "Praça do Comércio",
        "metadata": "location",
    },
    "contacts_message": {"content_type": "contacts", "body": "Ana Lima", "metadata": "contacts"},
    "interactive_button_reply": {
        "content_type": "interactive",
        "body": "Yes, confirm",
        "metadata": "reply_to",
    },
    "interactive_list_reply": {
        "content_type": "interactive",
        "body": "Medium",
        "metadata": "reply",
    },
    "button_message": {
        "content_type": "interactive",
        "body": "Stop promotions",
        "metadata": "payload",
    },
    "unsupported_message": {"content_type": "unsupported", "metadata": "errors"},
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
async def test_every_content_type_is_stored(
    client: httpx.AsyncClient, account: Any, db: Connection, fixture: str
):
    response = await deliver(client, account, raw("whatsapp", fixture))
    assert response.json()["processed"] == 1, response.text
    message = await db.fetchrow(
        "select content_type::text, body, attachments, metadata from messages"
    )
    expected = EXPECTED[fixture]
    assert message["content_type"] == expected["content_type"]
    if "body" in expected:
        assert message["body"] == expected["body"]
    if "attachment" in expected:
        assert message["attachments"][0].items() >= expected["attachment"].items()
    if "metadata" in expected:
        assert expected["metadata"] in message["metadata"]
    contact = await db.fetchrow("select name, phone from contacts")
    assert dict(contact) == {"name": "Kerry Fisher", "phone": "+16315551181"}


async def test_a_whatsapp_sender_and_a_contact_with_the_same_phone_are_one(
    client: httpx.AsyncClient, account: Any, db: Connection
):
    existing = await db.fetchval(
        "insert into contacts (organization_id, name, phone)"
        " values ($1, 'Kerry (CRM)', '+16315551181') returning id",
        account.organization_id,
    )
    await deliver(client, account, raw("whatsapp", "text_message"))
    assert await db.fetchval("select count(*) from contacts") == 1
    assert await db.fetchval("select contact_id from contact_identities") == existing
    assert await db.fetchval("select name from contacts") == "Kerry (CRM)", (
        "a name is never overwritten"
    )


async def test_a_batch_is_processed_whole(client: httpx.AsyncClient, account: Any, db: Connection):
    response = await deliver(client, account, raw("whatsapp", "batch"))
    assert response.json() == {
        "received": 5,
        "duplicates": 0,
        "processed": 4,
        "ignored": 0,
        "failed": 1,
    }
    rows = await db.fetch(
        "select c.phone, m.body from messages m join conversations v on v.id = m.conversation_id"
        " join contacts c on c.id = v.contact_id order by m.created_at"
    )
    assert [(r["phone"], r["body"]) for r in rows] == [
        ("+16315551181", "first"),
        ("+351912000111", "Olá"),
        ("+16315551181", "second"),
        ("+16315551181", "third"),
    ]
    assert await db.fetchval("select count(*) from conversations") == 2
    # the status is for a message we do not know yet: kept for the retry job
    assert (
        await db.fetchval("select event_type from inbound_events where status = 'failed'")
        == "status"
    )


@pytest.mark.parametrize("fixture", ["reaction_message", "template_status_update"])
async def test_events_the_inbox_does_not_use_are_acknowledged(
    client: httpx.AsyncClient, account: Any, db: Connection, fixture: str
):
    response = await deliver(client, account, raw("whatsapp", fixture))
    assert response.status_code == 200
    assert response.json()["ignored"] == 1
    assert await db.fetchval("select status from inbound_events") == "ignored"
    assert await db.fetchval("select count(*) from messages") == 0


async def test_a_message_for_another_phone_number_is_not_stored_as_ours(
    client: httpx.AsyncClient, account: Any, db: Connection
):
    payload = load("whatsapp", "text_message")
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    response = await deliver(client, account, json.dumps(payload).encode())
    assert response.json()["ignored"] == 1
    assert await db.fetchval("select count(*) from messages") == 0


async def test_the_message_is_pushed_to_the_organizations_inbox_topic(
    client: httpx.AsyncClient, account: Any, db: Connection
):
    await deliver(client, account, raw("whatsapp", "text_message"))
    topics = {r["topic"] for r in await db.fetch("select topic from realtime.messages")}
    assert topics == {f"org:{account.organization_id}:inbox"}
    kinds = [
        r["event_type"] for r in await db.fetch("select event_type from outbox_events order by id")
    ]
    assert kinds == ["contact.created", "conversation.created", "message.received"]


async def test_an_inbound_message_reopens_a_pending_conversation(
    client: httpx.AsyncClient, account: Any, db: Connection
):
    await deliver(client, account, raw("whatsapp", "text_message"))
    await db.execute(
        "update conversations set status = 'snoozed', snoozed_until = now() + interval '1 day'"
    )
    await deliver(client, account, raw("whatsapp", "image_message"))
    row = await db.fetchrow("select status::text, snoozed_until, unread_count from conversations")
    assert dict(row) == {"status": "open", "snoozed_until": None, "unread_count": 2}
    assert isinstance(await db.fetchval("select id from conversations"), UUID)
