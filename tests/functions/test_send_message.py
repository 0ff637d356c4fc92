from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
import respx

from shared.db import Connection
from shared.settings import Settings
from tests.channels.kit import Account
from tests.channels.kits import KITS
from tests.fixtures import load
from tests.support import auth, make_contact, make_org, make_user, member

URL = "/functions/v1/send-message"
GRAPH = "https://graph.facebook.com/v21.0/106540352242922/messages"
TELEGRAM = "https://api.telegram.org/bot7123456789:AAH-test-token-abcdefghijklmnop"


# The contact's identity on each channel, as the provider's fixtures name it.
RECIPIENTS = {
    "whatsapp": "16315551181",
    "telegram": "352170947",
    "messenger": "6945632145592814",
    "instagram": "1043562978112233",
    "sms": "+14155550123",
}


async def setup(
    db: Connection, channel: str, *, hours_since_inbound: float | None = 1
) -> dict[str, Any]:
    owner = await make_user(db)
    org = await make_org(db, owner)
    agent = await member(db, org, "agent")
    account: Account = await KITS[channel].create_account(db, org)
    contact = await make_contact(db, org, name="Kerry")
    external = RECIPIENTS[channel]
    await db.execute(
        "insert into contact_identities (organization_id, contact_id, channel, external_id)"
        " values ($1, $2, $3, $4)",
        org,
        contact,
        channel,
        external,
    )
    conversation = await db.fetchval(
        "insert into conversations"
        " (organization_id, contact_id, channel_account_id, last_inbound_at)"
        " values ($1, $2, $3, now() - $4::interval) returning id",
        org,
        contact,
        account.id,
        None if hours_since_inbound is None else timedelta(hours=hours_since_inbound),
    )
    return {
        "org": org,
        "agent": agent,
        "account": account,
        "conversation": conversation,
        "to": external,
    }


async def send(
    client: httpx.AsyncClient, settings: Settings, world: dict[str, Any], **body: Any
) -> httpx.Response:
    payload = {
        "conversation_id": str(world["conversation"]),
        "text": "We do! Delivery in 2 days.",
        **body,
    }
    headers = auth(settings, world["agent"]) | body.pop("headers", {})
    payload.pop("headers", None)
    return await client.post(URL, json=payload, headers=headers)


@respx.mock
async def test_a_whatsapp_reply_inside_the_window_is_sent(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db, "whatsapp")
    route = respx.post(GRAPH).mock(
        return_value=httpx.Response(200, json=load("whatsapp", "send_text_response"))
    )
    response = await send(client, settings, world)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "sent"
    assert (
        body["provider_message_id"] == "wamid.HBgLMTYzMTU1NTExODEVAgARGBJCMDk4RUM0QjI5QjZBOTg1MjQA"
    )
    assert body["sender_id"] == str(world["agent"])
    sent = route.calls.last.request
    assert sent.headers["authorization"] == "Bearer EAAG-test"
    assert json.loads(sent.content) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16315551181",
        "type": "text",
        "text": {"preview_url": False, "body": "We do! Delivery in 2 days."},
    }
    kinds = [
        r["event_type"]
        for r in await db.fetch(
            "select event_type from outbox_events where event_type like 'message.%' order by id"
        )
    ]
    assert kinds == ["message.sent", "message.status_changed"]


@respx.mock
async def test_media_goes_by_link_with_its_caption(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db, "whatsapp")
    route = respx.post(GRAPH).mock(
        return_value=httpx.Response(200, json=load("whatsapp", "send_text_response"))
    )
    response = await send(
        client,
        settings,
        world,
        text="Catalogue",
        media_url="https://cdn.example/cat.jpg",
        media_type="image",
    )
    assert response.status_code == 201
    sent = json.loads(route.calls.last.request.content)
    assert sent["type"] == "image"
    assert sent["image"] == {"link": "https://cdn.example/cat.jpg", "caption": "Catalogue"}
    assert response.json()["attachments"] == [
        {"type": "image", "url": "https://cdn.example/cat.jpg"}
    ]


@respx.mock
async def test_outside_the_24_hour_window_free_text_is_refused(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db, "whatsapp", hours_since_inbound=25)
    route = respx.post(GRAPH)
    response = await send(client, settings, world)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "outside_window"
    assert "template" in error["message"]
    assert not route.called
    assert await db.fetchval("select count(*) from messages") == 0


@respx.mock
async def test_429_is_retried_after_the_time_the_provider_asks(
    client: httpx.AsyncClient, settings: Settings, db: Connection, waits: list[float]
):
    world = await setup(db, "whatsapp")
    respx.post(GRAPH).mock(
        side_effect=[
            httpx.Response(
                429, json=load("whatsapp", "error_rate_limited"), headers={"Retry-After": "2"}
            ),
            httpx.Response(200, json=load("whatsapp", "send_text_response")),
        ]
    )
    response = await send(client, settings, world)
    assert response.status_code == 201
    assert waits == [2.0]
    attempts = response.json()["metadata"]["attempts"]
    assert [a["status"] for a in attempts] == [429, 200]


@respx.mock
async def test_a_provider_out_of_reach_fails_the_message_with_every_attempt(
    client: httpx.AsyncClient, settings: Settings, db: Connection, waits: list[float]
):
    """Connection refused: the request never left, so it is retried, with backoff."""
    world = await setup(db, "whatsapp")
    route = respx.post(GRAPH).mock(side_effect=httpx.ConnectError("connection refused"))
    response = await send(client, settings, world)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_unavailable"
    assert route.call_count == settings.provider_attempts
    assert waits == [0.5, 1.0]  # exponential backoff between the attempts
    message = await db.fetchrow("select status::text, error, metadata from messages")
    assert message["status"] == "failed"
    assert (message["error"]["outcome"], message["error"]["retryable"]) == ("unavailable", True)
    assert len(message["metadata"]["attempts"]) == settings.provider_attempts


@respx.mock
async def test_a_provider_refusal_is_a_502_with_its_reason(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db, "whatsapp")
    respx.post(GRAPH).mock(
        return_value=httpx.Response(400, json=load("whatsapp", "error_outside_window"))
    )
    response = await send(client, settings, world)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "provider_rejected"
    assert "Re-engagement message" in error["message"]
    message = await db.fetchrow("select status::text, error from messages")
    assert message["status"] == "failed"
    assert (message["error"]["code"], message["error"]["outcome"]) == (131047, "refused")


@respx.mock
async def test_an_idempotency_key_sends_once(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db, "whatsapp")
    route = respx.post(GRAPH).mock(
        return_value=httpx.Response(200, json=load("whatsapp", "send_text_response"))
    )
    first = await send(client, settings, world, headers={"Idempotency-Key": "reply-1"})
    again = await send(client, settings, world, headers={"Idempotency-Key": "reply-1"})
    assert route.call_count == 1
    assert again.status_code == first.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await db.fetchval("select count(*) from messages") == 1


async def test_a_conversation_of_another_organization_is_not_found(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db, "whatsapp")
    stranger = await make_user(db)
    await make_org(db, stranger)
    response = await client.post(
        URL,
        json={"conversation_id": str(world["conversation"]), "text": "hi"},
        headers=auth(settings, stranger),
    )
    assert response.status_code == 404
    assert await db.fetchval("select count(*) from messages") == 0


@pytest.mark.parametrize(
    "body", [{"text": ""}, {"text": None}, {"text": "x", "media_url": "https://a.example/x.png"}]
)
async def test_an_invalid_request_is_a_422(
    client: httpx.AsyncClient, settings: Settings, db: Connection, body: dict[str, Any]
):
    world = await setup(db, "whatsapp")
    response = await send(client, settings, world, **body)
    assert response.status_code == 422


@respx.mock
async def test_telegram_has_no_window_and_sends_through_the_bot(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db, "telegram", hours_since_inbound=24 * 30)
    route = respx.post(f"{TELEGRAM}/sendMessage").mock(
        return_value=httpx.Response(200, json=load("telegram", "send_message_response"))
    )
    response = await send(client, settings, world)
    assert response.status_code == 201, response.text
    assert response.json()["provider_message_id"] == "352170947:1401"
    assert json.loads(route.calls.last.request.content) == {
        "chat_id": "352170947",
        "text": "We do! Delivery in 2 days.",
    }


@respx.mock
async def test_telegram_photos_and_its_own_retry_after(
    client: httpx.AsyncClient, settings: Settings, db: Connection, waits: list[float]
):
    world = await setup(db, "telegram")
    route = respx.post(f"{TELEGRAM}/sendPhoto").mock(
        side_effect=[
            httpx.Response(429, json=load("telegram", "too_many_requests")),
            httpx.Response(200, json=load("telegram", "send_photo_response")),
        ]
    )
    response = await send(
        client,
        settings,
        world,
        text="Catálogo",
        media_url="https://cdn.example/c.jpg",
        media_type="image",
    )
    assert response.status_code == 201
    assert waits == [3.0]
    assert json.loads(route.calls.last.request.content) == {
        "chat_id": "352170947",
        "photo": "https://cdn.example/c.jpg",
        "caption": "Catálogo",
    }


@respx.mock
async def test_a_disabled_account_does_not_send(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db, "telegram")
    await db.execute("update channel_accounts set status = 'disabled'")
    response = await send(client, settings, world)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "account_disabled"


async def test_message_rows_come_from_send_message_not_from_other_members(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    """An API key cannot use the agent endpoint."""
    world = await setup(db, "telegram")
    response = await client.post(
        URL,
        json={"conversation_id": str(world["conversation"]), "text": "x"},
        headers={"X-API-Key": "cg_" + "a" * 43},
    )
    assert response.status_code == 403
    assert isinstance(world["conversation"], UUID)
