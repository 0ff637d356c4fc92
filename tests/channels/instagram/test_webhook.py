"""Instagram's own events, through the real webhook into the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from shared.db import Connection
from shared.runtime import Runtime
from tests.channels.instagram.kit import InstagramKit
from tests.channels.kit import Account, fetch_profiles, post
from tests.fixtures import load, raw

KIT = InstagramKit()
IGSID = "1043562978112233"
URL = "/functions/v1/instagram-webhook"


async def deliver(client: httpx.AsyncClient, account: Account, body: bytes) -> httpx.Response:
    return await post(client, KIT, account.id, KIT.signed_raw(account, body))


def event_of(fixture: str) -> dict[str, Any]:
    event: dict[str, Any] = load("instagram", fixture)["entry"][0]["messaging"][0]
    return event


async def test_meta_verification_echoes_the_challenge(client: httpx.AsyncClient, account: Account):
    query = {"hub.mode": "subscribe", "hub.challenge": "2093511448"}
    ok = await client.get(
        f"{URL}/{account.id}", params={**query, "hub.verify_token": "verify-insta-123"}
    )
    assert (ok.status_code, ok.text) == (200, "2093511448")
    wrong = await client.get(f"{URL}/{account.id}", params={**query, "hub.verify_token": "x"})
    assert wrong.status_code == 403


CDN = "https://lookaside.fbsbx.com/ig_messaging_cdn/"
EXPECTED: dict[str, dict[str, Any]] = {
    "text_message": {"content_type": "text", "body": "Olá! Do you ship the linen shirt to Porto?"},
    "image_message": {"content_type": "image", "attachments": ["image", "image"]},
    "video_message": {"content_type": "video", "attachments": ["video"]},
    "audio_message": {"content_type": "audio", "attachments": ["audio"]},
    "file_message": {"content_type": "document", "attachments": ["document"]},
    "share_message": {
        "content_type": "text",
        "body": "Linen shirt, sand. New season in store now.",
        "attachments": ["share", "ig_post"],
        "media_id": "18139494541428835",
    },
    "reel_message": {"content_type": "video", "body": None, "attachments": ["ig_reel"]},
    "story_mention": {"content_type": "image", "attachments": ["story_mention"]},
    "story_reply": {
        "content_type": "text",
        "body": "Is this one still available?",
        "metadata": {"reply_to_story": {"id": "3478812345678901234"}},
    },
    "quick_reply_message": {
        "content_type": "interactive",
        "body": "Size M",
        "metadata": {"quick_reply": {"payload": "SIZE_M"}},
    },
    "reply_message": {"content_type": "text", "metadata": {"reply_to": None}},
    "postback": {
        "content_type": "interactive",
        "body": "Track my order",
        "metadata": {"postback": {"payload": "TRACK_ORDER"}},
    },
    "unsupported_message": {"content_type": "unsupported", "body": None},
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
async def test_every_kind_of_message_is_stored(
    client: httpx.AsyncClient, account: Account, db: Connection, runtime: Runtime, fixture: str
):
    response = await deliver(client, account, raw("instagram", fixture))
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
    kinds = [a["type"] for a in message["attachments"]]
    assert kinds == expected.get("attachments", [])
    assert all(a["url"].startswith(CDN) for a in message["attachments"])
    if "media_id" in expected:
        assert message["attachments"][0]["media_id"] == expected["media_id"]
    for key, value in expected.get("metadata", {}).items():
        assert key in message["metadata"]
        if value:
            assert message["metadata"][key].items() >= value.items()
    event = event_of(fixture)
    assert message["provider_message_id"] == (event.get("message") or event.get("postback"))["mid"]
    assert message["created_at"] == datetime.fromtimestamp(event["timestamp"] / 1000, UTC)
    await fetch_profiles(runtime)
    contact = await db.fetchrow(
        "select c.name, c.avatar_url, i.external_id from contacts c"
        " join contact_identities i on i.contact_id = c.id"
    )
    assert (contact["name"], contact["external_id"]) == ("Joana Silva", IGSID)
    assert contact["avatar_url"] == load("instagram", "profile")["profile_pic"]


async def test_the_profile_api_is_instagrams_with_the_accounts_token(
    client: httpx.AsyncClient, account: Account, runtime: Runtime, provider: respx.MockRouter
):
    await deliver(client, account, raw("instagram", "text_message"))
    await fetch_profiles(runtime)
    request = provider["profile"].calls.last.request
    assert request.url.host == "graph.instagram.com"
    assert request.url.path == f"/v21.0/{IGSID}"
    assert request.url.params["fields"] == "name,username,profile_pic"
    assert request.headers["authorization"] == "Bearer IGAAT-user-token"


async def test_a_profile_without_a_name_falls_back_to_the_username(
    client: httpx.AsyncClient,
    account: Account,
    db: Connection,
    runtime: Runtime,
    provider: respx.MockRouter,
):
    profile = {k: v for k, v in load("instagram", "profile").items() if k != "name"}
    provider["profile"].respond(200, json=profile)
    await deliver(client, account, raw("instagram", "text_message"))
    await fetch_profiles(runtime)
    assert await db.fetchval("select name from contacts") == "@joana.rsilva"


async def test_a_reply_sent_from_the_instagram_app_is_recorded_as_ours_and_read_later(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    await deliver(client, account, raw("instagram", "text_message"))
    assert (await deliver(client, account, raw("instagram", "echo_message"))).json()[
        "processed"
    ] == 1
    echo = await db.fetchrow(
        "select status::text, body, provider_message_id from messages where direction = 'outbound'"
    )
    assert dict(echo) == {
        "status": "sent",
        "body": "Yes, we ship to Porto in 2 days.",
        "provider_message_id": event_of("echo_message")["message"]["mid"],
    }
    # messaging_seen names the message seen; everything sent up to then is read.
    assert (await deliver(client, account, raw("instagram", "read"))).json()["processed"] == 1
    read = await db.fetchrow(
        "select status::text, read_at, delivered_at from messages where direction = 'outbound'"
    )
    seen = datetime.fromtimestamp(event_of("read")["timestamp"] / 1000, UTC)
    assert dict(read) == {"status": "read", "read_at": seen, "delivered_at": seen}


async def test_a_read_only_covers_what_was_sent_before_it(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    await deliver(client, account, raw("instagram", "echo_message"))
    seen = datetime.fromtimestamp(event_of("read")["timestamp"] / 1000, UTC)
    await db.execute(
        "insert into messages (organization_id, conversation_id, channel_account_id, direction,"
        " sender_type, body, status, provider_message_id, created_at, sent_at)"
        " select organization_id, id, channel_account_id, 'outbound', 'user', 'later', 'sent',"
        " 'mid-later', $1, $1 from conversations",
        seen + timedelta(seconds=5),
    )
    await deliver(client, account, raw("instagram", "read"))
    rows = await db.fetch("select body, status::text from messages order by created_at")
    assert [(r["body"], r["status"]) for r in rows] == [
        ("Yes, we ship to Porto in 2 days.", "read"),
        ("later", "sent"),
    ]


async def test_a_deleted_message_is_acknowledged_and_the_original_kept(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    await deliver(client, account, raw("instagram", "text_message"))
    response = await deliver(client, account, raw("instagram", "deleted_message"))
    assert response.json() == {
        "received": 1,
        "duplicates": 0,  # not mistaken for a redelivery of the message it deletes
        "processed": 0,
        "ignored": 1,
        "failed": 0,
    }
    assert await db.fetchval("select count(*) from messages") == 1


@pytest.mark.parametrize("fixture", ["reaction", "comment"])
async def test_events_the_inbox_does_not_use_are_acknowledged(
    client: httpx.AsyncClient, account: Account, db: Connection, fixture: str
):
    response = await deliver(client, account, raw("instagram", fixture))
    assert response.status_code == 200
    assert response.json()["ignored"] == 1
    assert await db.fetchval("select status from inbound_events") == "ignored"
    assert await db.fetchval("select count(*) from messages") == 0


async def test_a_message_for_another_instagram_account_is_not_stored_as_ours(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    payload = load("instagram", "text_message")
    payload["entry"][0]["id"] = "17841400000000000"
    payload["entry"][0]["messaging"][0]["recipient"]["id"] = "17841400000000000"
    response = await deliver(client, account, json.dumps(payload).encode())
    assert response.json()["ignored"] == 1
    assert await db.fetchval("select count(*) from messages") == 0


async def test_a_messenger_body_is_not_an_instagram_delivery_but_is_kept_failed(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    body = raw("messenger", "text_message")
    response = await deliver(client, account, body)  # signed with this account's secret
    assert response.status_code == 200
    assert response.json()["failed"] == 1
    event = await db.fetchrow("select event_type, raw, last_error from inbound_events")
    assert (event["event_type"], event["raw"]) == ("unreadable", body)
    assert "object is 'page'" in event["last_error"]
    assert await db.fetchval("select count(*) from messages") == 0
