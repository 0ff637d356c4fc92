"""Twilio's own events, through the real webhook into the database."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from shared.channels.sms.channel import signature
from shared.db import Connection
from tests.channels.kit import post
from tests.channels.sms.kit import SmsKit
from tests.channels.test_pipeline import outbound
from tests.channels.whatsapp.kit import WhatsAppKit
from tests.fixtures import load, raw
from tests.support import make_org, make_user

KIT = SmsKit()


@pytest.fixture
async def account(db: Connection):
    return await KIT.create_account(db, await make_org(db, await make_user(db)))


async def deliver(
    client: httpx.AsyncClient, account: Any, fixture: str, **changes: str
) -> httpx.Response:
    form = load("sms", fixture) | changes
    return await post(client, KIT, account.id, KIT.signed_form(account, list(form.items())))


async def test_a_text_message_becomes_a_contact_with_its_phone(
    client: httpx.AsyncClient, account: Any, db: Connection
):
    response = await deliver(client, account, "text_message")
    assert response.json()["processed"] == 1, response.text
    row = await db.fetchrow(
        "select c.phone, i.external_id, m.body, m.content_type::text, m.provider_message_id"
        " from messages m join conversations v on v.id = m.conversation_id"
        " join contacts c on c.id = v.contact_id join contact_identities i on i.contact_id = c.id"
    )
    assert dict(row) == {
        "phone": "+14155550123",
        "external_id": "+14155550123",
        "body": "Hi, is my order shipped?",
        "content_type": "text",
        "provider_message_id": "SM1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d",
    }


async def test_mms_media_are_kept_as_references(
    client: httpx.AsyncClient, account: Any, db: Connection
):
    await deliver(client, account, "mms_message")
    message = await db.fetchrow("select content_type::text, body, attachments from messages")
    assert message["content_type"] == "image"
    assert message["body"] is None
    assert [(a["type"], a["mime_type"]) for a in message["attachments"]] == [
        ("image", "image/jpeg"),
        ("document", "application/pdf"),
    ]
    assert message["attachments"][0]["url"].endswith("/Media/ME1111111111111111111111111111111a")


async def test_stop_opts_the_contact_out_and_start_back_in(
    client: httpx.AsyncClient, account: Any, db: Connection
):
    await deliver(client, account, "stop_message")
    assert await db.fetchval("select opted_out_channels::text[] from contacts") == ["sms"]
    assert await db.fetchval("select body from messages") == "Stop", (
        "the keyword is kept in the thread"
    )
    await deliver(client, account, "start_message")
    assert await db.fetchval("select opted_out_channels::text[] from contacts") == []


@pytest.mark.parametrize("keyword", ["STOP", "unsubscribe", " Cancel ", "END", "quit"])
async def test_every_opt_out_keyword(
    client: httpx.AsyncClient, account: Any, db: Connection, keyword: str
):
    await deliver(client, account, "text_message", Body=keyword)
    assert await db.fetchval("select opted_out_channels::text[] from contacts") == ["sms"]


async def test_a_sentence_with_stop_in_it_is_not_an_opt_out(
    client: httpx.AsyncClient, account: Any, db: Connection
):
    await deliver(client, account, "text_message", Body="Please stop by tomorrow")
    assert await db.fetchval("select opted_out_channels::text[] from contacts") == []


async def test_an_undelivered_status_fails_the_message_with_twilios_code(
    client: httpx.AsyncClient, account: Any, db: Connection
):
    message = await outbound(db, KIT, account, "SM9f1c2e3d4b5a69788a7b6c5d4e3f2a1b")
    queued = await deliver(client, account, "status_queued")
    assert queued.json()["ignored"] == 1
    await deliver(client, account, "status_undelivered")
    row = await db.fetchrow("select status::text, error from messages where id = $1", message)
    assert row["status"] == "failed"
    assert row["error"] == {"code": "30003", "message": None}


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://connectgain.example:443/functions/v1/sms-webhook/{id}", True),
        ("https://connectgain.example:8443/functions/v1/sms-webhook/{id}", False),
        ("http://connectgain.example/functions/v1/sms-webhook/{id}", False),
    ],
)
async def test_the_signed_url_may_carry_the_default_port(
    client: httpx.AsyncClient, account: Any, db: Connection, url: str, accepted: bool
):
    params = list(load("sms", "text_message").items())
    signed = signature(url.format(id=account.id), params, account.secrets["auth_token"])
    response = await client.post(
        f"/functions/v1/sms-webhook/{account.id}",
        content=urlencode(params).encode(),
        headers={"X-Twilio-Signature": signed, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == (200 if accepted else 401)


async def test_a_signed_json_body_is_not_twilios_but_is_kept_failed(
    client: httpx.AsyncClient, account: Any, db: Connection
):
    body = raw("sms", "text_message")
    response = await client.post(
        f"/functions/v1/sms-webhook/{account.id}",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Twilio-Signature": signature(KIT.url(account), [], account.secrets["auth_token"]),
        },
    )
    assert response.status_code == 200
    assert response.json()["failed"] == 1
    event = await db.fetchrow("select event_type, raw, last_error from inbound_events")
    assert (event["event_type"], event["raw"]) == ("unreadable", body)
    assert "Twilio posts form-encoded bodies" in event["last_error"]
    assert await db.fetchval("select count(*) from messages") == 0


async def test_another_twilio_account_is_ignored(
    client: httpx.AsyncClient, account: Any, db: Connection
):
    response = await deliver(client, account, "text_message", AccountSid="AC" + "0" * 32)
    assert response.json()["ignored"] == 1
    assert await db.fetchval("select count(*) from messages") == 0


async def test_an_sms_sender_and_a_whatsapp_sender_with_one_number_are_one_contact(
    client: httpx.AsyncClient, account: Any, db: Connection
):
    whatsapp = WhatsAppKit()
    wa_account = await whatsapp.create_account(db, account.organization_id)
    wa = whatsapp.text_message(
        wa_account, sender="14155550123", message_id="wamid.X1", text="from WhatsApp"
    )
    await client.post(
        f"/functions/v1/whatsapp-webhook/{wa_account.id}", content=wa.body, headers=wa.headers
    )
    await deliver(client, account, "text_message")
    assert await db.fetchval("select count(*) from contacts") == 1
    channels = await db.fetchval(
        "select array_agg(channel::text order by channel) from contact_identities"
    )
    assert sorted(channels) == ["sms", "whatsapp"]
    assert await db.fetchval("select count(*) from conversations") == 2, (
        "one conversation per channel account"
    )
