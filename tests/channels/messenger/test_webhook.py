"""Messenger's own events, through the real webhook into the database."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from shared.db import Connection
from shared.runtime import Runtime
from tests.channels.kit import Account, fetch_profiles, post
from tests.channels.messenger.kit import MessengerKit
from tests.fixtures import load, raw

KIT = MessengerKit()
PSID = "6945632145592814"
URL = "/functions/v1/messenger-webhook"


async def deliver(client: httpx.AsyncClient, account: Account, body: bytes) -> httpx.Response:
    return await post(client, KIT, account.id, KIT.signed_raw(account, body))


def edited(fixture: str, change: Any) -> bytes:
    payload = load("messenger", fixture)
    change(payload["entry"][0]["messaging"][0])
    return json.dumps(payload).encode()


async def test_meta_verification_echoes_the_challenge(client: httpx.AsyncClient, account: Account):
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
    ok = await client.get(
        f"{URL}/{account.id}", params={**query, "hub.verify_token": "verify-page-123"}
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    wrong = await client.get(f"{URL}/{account.id}", params={**query, "hub.verify_token": "nope"})
    assert wrong.status_code == 403


CDN = "https://scontent.xx.fbcdn.net/"
EXPECTED: dict[str, dict[str, Any]] = {
    "text_message": {"content_type": "text", "body": "Hi! Do you rent e-bikes for the weekend?"},
    "image_message": {"content_type": "image", "attachment": {"type": "image"}, "url": CDN},
    "video_message": {"content_type": "video", "attachment": {"type": "video"}},
    "audio_message": {"content_type": "audio", "attachment": {"type": "audio"}},
    "file_message": {"content_type": "document", "attachment": {"type": "document"}},
    "location_message": {
        "content_type": "location",
        "body": "Pinned Location",
        "metadata": {"location": {"latitude": 38.707502, "longitude": -9.136411}},
    },
    "fallback_message": {
        "content_type": "text",
        "body": "https://www.visitlisboa.com/en/places/belem-tower",
        "attachment": {"type": "fallback", "caption": "Belém Tower | Visit Lisboa"},
    },
    "sticker_message": {
        "content_type": "sticker",
        "attachment": {"type": "image", "media_id": "369239263222822"},
    },
    "quick_reply_message": {
        "content_type": "interactive",
        "body": "Saturday and Sunday",
        "metadata": {"quick_reply": {"payload": "RENTAL_WEEKEND"}},
    },
    "reply_message": {
        "content_type": "text",
        "body": "Yes, that one please",
        "metadata": {
            "reply_to": "m_Ou1tX6pL3kNq8Wz2Hc7Ys4Vm9Ge5Bu1Jo6Fa3Ki0Sd7Np4Xt1Bq8Lr5Mw2Yc9Hv6Ez"
        },
    },
    "postback": {
        "content_type": "interactive",
        "body": "Get Started",
        "metadata": {"postback": {"title": "Get Started", "payload": "GET_STARTED"}},
    },
    "standby_message": {"content_type": "text", "body": "Is anyone there?"},
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
async def test_every_kind_of_message_is_stored(
    client: httpx.AsyncClient, account: Account, db: Connection, runtime: Runtime, fixture: str
):
    response = await deliver(client, account, raw("messenger", fixture))
    assert response.json()["processed"] == 1, response.text
    message = await db.fetchrow(
        "select content_type::text, body, attachments, metadata, direction::text,"
        " provider_message_id, created_at from messages"
    )
    expected = EXPECTED[fixture]
    assert message["content_type"] == expected["content_type"]
    assert message["direction"] == "inbound"
    if "body" in expected:
        assert message["body"] == expected["body"]
    if "attachment" in expected:
        assert message["attachments"][0].items() >= expected["attachment"].items()
        assert message["attachments"][0]["url"].startswith(expected.get("url", "https://"))
    for key, value in expected.get("metadata", {}).items():
        if isinstance(value, dict):
            assert message["metadata"][key].items() >= value.items()
        else:
            assert message["metadata"][key] == value
    event = load("messenger", fixture)["entry"][0]
    item = (event.get("messaging") or event["standby"])[0]
    mid = (item.get("message") or item.get("postback"))["mid"]
    assert message["provider_message_id"] == mid
    assert message["created_at"] == datetime.fromtimestamp(item["timestamp"] / 1000, UTC)
    await fetch_profiles(runtime)
    contact = await db.fetchrow(
        "select c.name, c.avatar_url, i.external_id from contacts c"
        " join contact_identities i on i.contact_id = c.id"
    )
    assert (contact["name"], contact["external_id"]) == ("Ana Ferreira", PSID)
    assert contact["avatar_url"] == load("messenger", "profile")["profile_pic"]


async def test_the_profile_api_is_called_with_the_page_token(
    client: httpx.AsyncClient, account: Account, runtime: Runtime, provider: respx.MockRouter
):
    await deliver(client, account, raw("messenger", "text_message"))
    await fetch_profiles(runtime)
    request = provider["profile"].calls.last.request
    assert request.url.path == f"/v21.0/{PSID}"
    assert request.url.params["fields"] == "first_name,last_name,profile_pic"
    assert request.headers["authorization"] == "Bearer EAAP-page-token"


async def test_a_reply_sent_from_the_page_inbox_is_recorded_as_ours(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    await deliver(client, account, raw("messenger", "text_message"))
    for fixture in ("echo_message", "echo_template_message"):
        assert (await deliver(client, account, raw("messenger", fixture))).json()["processed"] == 1
    rows = await db.fetch(
        "select direction::text, status::text, content_type::text, body, metadata from messages"
        " order by created_at"
    )
    assert [(r["direction"], r["status"], r["content_type"]) for r in rows] == [
        ("inbound", "received", "text"),
        ("outbound", "sent", "text"),
        ("outbound", "sent", "template"),
    ]
    assert rows[1]["body"] == "Yes! 25 EUR a day, helmet included."
    assert rows[1]["metadata"]["app_id"] == "263902037430900"
    assert rows[2]["metadata"]["template"]["template_type"] == "button"
    assert await db.fetchval("select unread_count from conversations") == 1


async def test_delivery_and_read_watermarks_mark_the_replies_sent_before_them(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    await deliver(client, account, raw("messenger", "text_message"))
    # The fixtures' watermarks are about 2 (delivered) and 3 minutes (read) later.
    sent = datetime.fromtimestamp(load("messenger", "text_message")["entry"][0]["time"] / 1000, UTC)
    delivered = load("messenger", "delivery")["entry"][0]["messaging"][0]["delivery"]["watermark"]
    read = load("messenger", "read")["entry"][0]["messaging"][0]["timestamp"]
    for provider_id, at in (("m_early", sent), ("m_between", sent + timedelta(minutes=2.5))):
        await db.execute(
            "insert into messages (organization_id, conversation_id, channel_account_id,"
            " direction, sender_type, body, status, provider_message_id, created_at, sent_at)"
            " select organization_id, id, channel_account_id, 'outbound', 'user', 'hi', 'sent',"
            " $1, $2, $2 from conversations",
            provider_id,
            at,
        )
    assert (await deliver(client, account, raw("messenger", "delivery"))).json()["processed"] == 1
    states = await db.fetch("select provider_message_id, status::text from messages")
    assert {r["provider_message_id"]: r["status"] for r in states}.items() >= {
        ("m_early", "delivered"),
        ("m_between", "sent"),  # sent after the delivery watermark
    }
    assert (await deliver(client, account, raw("messenger", "read"))).json()["processed"] == 1
    rows = await db.fetch(
        "select provider_message_id, status::text, delivered_at, read_at from messages"
        " where direction = 'outbound'"
    )
    by_id = {r["provider_message_id"]: r for r in rows}
    assert by_id["m_early"]["status"] == "read"
    assert by_id["m_early"]["delivered_at"] == datetime.fromtimestamp(delivered / 1000, UTC)
    assert by_id["m_early"]["read_at"] == datetime.fromtimestamp(read / 1000, UTC)
    assert by_id["m_between"]["status"] == "read"


async def test_an_edited_message_changes_the_stored_text(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    await deliver(client, account, raw("messenger", "text_message"))
    response = await deliver(client, account, raw("messenger", "message_edit"))
    assert response.json()["processed"] == 1
    rows = await db.fetch("select body, metadata from messages")
    assert len(rows) == 1
    assert rows[0]["body"] == "Hi! Do you rent e-bikes for the whole weekend?"
    assert "edited_at" in rows[0]["metadata"]


async def test_the_contacts_own_phone_and_email_from_quick_replies_are_learned(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    """Phone-number and e-mail quick replies are how Messenger shares them: a known
    contact learns the phone; a new sender with a CRM contact's e-mail joins it."""
    await deliver(client, account, raw("messenger", "text_message"))
    assert await db.fetchval("select phone from contacts") is None
    await deliver(client, account, raw("messenger", "phone_quick_reply"))
    assert await db.fetchval("select phone from contacts") == "+351912345678"

    crm = await db.fetchval(
        "insert into contacts (organization_id, name, email) values ($1, 'Ana (CRM)',"
        " 'ana.ferreira@example.pt') returning id",
        account.organization_id,
    )
    stranger = edited("email_quick_reply", lambda e: e["sender"].update(id="7213390557413826"))
    assert (await deliver(client, account, stranger)).json()["processed"] == 1
    joined = await db.fetchval(
        "select contact_id from contact_identities where external_id = '7213390557413826'"
    )
    assert joined == crm
    assert await db.fetchval("select name from contacts where id = $1", crm) == "Ana (CRM)"


async def test_a_batch_is_processed_whole(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    response = await deliver(client, account, raw("messenger", "batch"))
    assert response.json() == {
        "received": 5,
        "duplicates": 0,
        "processed": 4,  # three messages and a read watermark
        "ignored": 1,  # the reaction
        "failed": 0,
    }
    rows = await db.fetch(
        "select i.external_id, m.body from messages m"
        " join conversations v on v.id = m.conversation_id"
        " join contact_identities i on i.contact_id = v.contact_id order by m.created_at"
    )
    assert [(r["external_id"], r["body"]) for r in rows] == [
        (PSID, "first"),
        ("7213390557413826", "Olá"),
        (PSID, "second"),
    ]
    again = await deliver(client, account, raw("messenger", "batch"))
    assert again.json()["duplicates"] == 5


@pytest.mark.parametrize(
    ("fixture", "logged"),
    [("reaction", "reaction react \u2764\ufe0f on m_Ec5h"), ("referral", "unused referral event")],
)
async def test_events_the_inbox_does_not_use_are_acknowledged_and_logged(
    client: httpx.AsyncClient,
    account: Account,
    db: Connection,
    caplog: pytest.LogCaptureFixture,
    fixture: str,
    logged: str,
):
    with caplog.at_level(logging.INFO, logger="connectgain.channels.meta"):
        response = await deliver(client, account, raw("messenger", fixture))
    assert logged in caplog.text
    assert response.status_code == 200
    assert response.json()["ignored"] == 1
    assert await db.fetchval("select status from inbound_events") == "ignored"
    assert await db.fetchval("select count(*) from messages") == 0


async def test_an_unknown_kind_of_event_is_acknowledged_and_logged(
    client: httpx.AsyncClient, account: Account, db: Connection, caplog: pytest.LogCaptureFixture
):
    def into_something_new(event: dict[str, Any]) -> None:
        event["game_play"] = {"game_id": "1234", "score": 99}
        del event["message"]

    with caplog.at_level(logging.WARNING, logger="connectgain.channels.meta"):
        response = await deliver(client, account, edited("text_message", into_something_new))
    assert response.json()["ignored"] == 1
    assert "unknown game_play event" in caplog.text
    assert await db.fetchval("select last_error from inbound_events") is None


async def test_a_message_is_a_message_whatever_rides_beside_it(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    def with_a_referral_first(event: dict[str, Any]) -> None:
        message = event.pop("message")
        event["referral"] = {"ref": "spring-campaign", "source": "ADS", "type": "OPEN_THREAD"}
        event["message"] = message

    response = await deliver(client, account, edited("text_message", with_a_referral_first))
    assert response.json()["processed"] == 1
    assert await db.fetchval("select event_type from inbound_events") == "message"
    assert await db.fetchval("select count(*) from messages") == 1


def for_another_page(payload: dict[str, Any]) -> None:
    payload["entry"][0]["id"] = "999"
    payload["entry"][0]["messaging"][0]["recipient"]["id"] = "999"


def from_a_plugin_visitor(payload: dict[str, Any]) -> None:
    payload["entry"][0]["messaging"][0]["sender"] = {"user_ref": "7bd1a2c4-plugin"}


@pytest.mark.parametrize("change", [for_another_page, from_a_plugin_visitor])
async def test_events_that_are_not_a_conversation_of_this_page_are_not_stored(
    client: httpx.AsyncClient, account: Account, db: Connection, change: Any
):
    payload = load("messenger", "text_message")
    change(payload)
    response = await deliver(client, account, json.dumps(payload).encode())
    assert response.json()["ignored"] == 1
    assert await db.fetchval("select count(*) from messages") == 0


async def test_a_malformed_event_is_kept_for_the_retry_job_and_the_rest_lands(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    payload = load("messenger", "batch")
    del payload["entry"][0]["messaging"][0]["message"]["mid"]  # no id: unparsable
    response = await deliver(client, account, json.dumps(payload).encode())
    assert response.json()["failed"] == 1
    assert response.json()["processed"] == 3
    error = await db.fetchval("select last_error from inbound_events where status = 'failed'")
    assert "mid" in error


async def test_an_instagram_body_is_not_a_messenger_delivery_but_is_kept_failed(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    body = raw("instagram", "text_message")
    response = await deliver(client, account, body)  # signed with this account's secret
    assert response.status_code == 200
    assert response.json()["failed"] == 1
    event = await db.fetchrow("select event_type, raw, last_error from inbound_events")
    assert (event["event_type"], event["raw"]) == ("unreadable", body)
    assert "object is 'instagram'" in event["last_error"]
    assert await db.fetchval("select count(*) from messages") == 0
