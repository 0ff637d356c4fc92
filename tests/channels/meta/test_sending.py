"""send-message through Meta's Send API, for Messenger and Instagram alike: the
messaging window (RESPONSE, then the HUMAN_AGENT tag for 7 days, then nothing), what
each can carry, and the Graph API's refusals."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from shared.db import Connection
from shared.settings import Settings
from tests.channels.instagram.kit import InstagramKit
from tests.channels.messenger.kit import MessengerKit
from tests.channels.meta.kit import MetaMessagingKit
from tests.fixtures import load
from tests.functions.test_send_message import RECIPIENTS, send, setup

META = [MessengerKit(), InstagramKit()]
TOKENS = {"messenger": "EAAP-page-token", "instagram": "IGAAT-user-token"}


def channel_id(kit: MetaMessagingKit) -> str:
    return kit.channel


def send_api(kit: MetaMessagingKit) -> str:
    return f"{kit.api}/{kit.external_id}/messages"


@pytest.fixture(params=META, ids=channel_id)
def kit(request: pytest.FixtureRequest) -> MetaMessagingKit:
    kit: MetaMessagingKit = request.param
    return kit


@respx.mock
@pytest.mark.parametrize(
    ("hours", "options"),
    [
        (1, {"messaging_type": "RESPONSE"}),
        (23.9, {"messaging_type": "RESPONSE"}),
        (25, {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}),
        (24 * 6.9, {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}),
    ],
)
async def test_a_reply_goes_out_through_the_send_api_with_the_windows_messaging_type(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    kit: MetaMessagingKit,
    hours: float,
    options: dict[str, str],
):
    world = await setup(db, kit.channel, hours_since_inbound=hours)
    answer = load(kit.channel, "send_response")
    route = respx.post(send_api(kit)).mock(return_value=httpx.Response(200, json=answer))
    response = await send(client, settings, world)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "sent"
    assert response.json()["provider_message_id"] == answer["message_id"]
    sent = route.calls.last.request
    assert sent.headers["authorization"] == f"Bearer {TOKENS[kit.channel]}"
    assert json.loads(sent.content) == {
        "recipient": {"id": RECIPIENTS[kit.channel]},
        **options,
        "message": {"text": "We do! Delivery in 2 days."},
    }


@respx.mock
@pytest.mark.parametrize("hours", [24 * 7 + 0.1, None], ids=["after-7-days", "never-wrote"])
async def test_beyond_the_human_agent_window_nothing_is_sent_or_stored(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    kit: MetaMessagingKit,
    hours: float | None,
):
    world = await setup(db, kit.channel, hours_since_inbound=hours)
    route = respx.post(send_api(kit))
    response = await send(client, settings, world)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "outside_window"
    assert "7 days" in error["message"]
    assert not route.called
    assert await db.fetchval("select count(*) from messages") == 0


@respx.mock
@pytest.mark.parametrize(
    ("media_type", "kind"), [("image", "image"), ("video", "video"), ("audio", "audio")]
)
async def test_media_goes_as_an_attachment_by_url(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    kit: MetaMessagingKit,
    media_type: str,
    kind: str,
):
    world = await setup(db, kit.channel)
    route = respx.post(send_api(kit)).mock(
        return_value=httpx.Response(200, json=load(kit.channel, "send_response"))
    )
    response = await send(
        client,
        settings,
        world,
        text=None,
        media_url=f"https://cdn.example/catalogue.{media_type}",
        media_type=media_type,
    )
    assert response.status_code == 201, response.text
    assert json.loads(route.calls.last.request.content)["message"] == {
        "attachment": {
            "type": kind,
            "payload": {"url": f"https://cdn.example/catalogue.{media_type}"},
        }
    }
    assert response.json()["content_type"] == media_type


@respx.mock
async def test_messenger_sends_documents_as_files(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    kit = MessengerKit()
    world = await setup(db, kit.channel)
    route = respx.post(send_api(kit)).mock(
        return_value=httpx.Response(200, json=load(kit.channel, "send_response"))
    )
    body = {"text": None, "media_url": "https://cdn.example/terms.pdf", "media_type": "document"}
    response = await send(client, settings, world, **body)
    assert response.status_code == 201
    attachment = json.loads(route.calls.last.request.content)["message"]["attachment"]
    assert attachment == {"type": "file", "payload": {"url": "https://cdn.example/terms.pdf"}}


@respx.mock
@pytest.mark.parametrize(
    ("channel", "body", "reason"),
    [
        (
            "messenger",
            {"media_url": "https://cdn.example/a.jpg", "media_type": "image"},
            "cannot caption",
        ),
        (
            "instagram",
            {"media_url": "https://cdn.example/a.jpg", "media_type": "image"},
            "cannot caption",
        ),
        (
            "instagram",
            {"text": None, "media_url": "https://cdn.example/a.pdf", "media_type": "document"},
            "cannot send document",
        ),
        ("messenger", {"text": "x" * 2001}, "at most 2000"),
        ("instagram", {"text": "x" * 1001}, "at most 1000"),
    ],
)
async def test_what_the_channel_cannot_carry_is_refused_before_anything_is_stored(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    channel: str,
    body: dict[str, Any],
    reason: str,
):
    world = await setup(db, channel)
    route = respx.post(url__startswith="https://graph.")
    response = await send(client, settings, world, **body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unsupported_message"
    assert reason in response.json()["error"]["message"]
    assert not route.called
    assert await db.fetchval("select count(*) from messages") == 0


@respx.mock
@pytest.mark.parametrize(
    ("channel", "fixture", "code"),
    [
        ("messenger", "error_outside_window", 10),
        ("messenger", "error_user_unavailable", 551),
        ("messenger", "error_invalid_token", 190),
        ("instagram", "error_outside_window", 10),
        ("instagram", "error_invalid_token", 190),
    ],
)
async def test_a_graph_api_refusal_is_a_502_and_the_message_keeps_it(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    channel: str,
    fixture: str,
    code: int,
):
    kit = next(k for k in META if k.channel == channel)
    world = await setup(db, channel)
    error = load(channel, fixture)
    status = 401 if code == 190 else 400
    route = respx.post(send_api(kit)).mock(return_value=httpx.Response(status, json=error))
    response = await send(client, settings, world)
    assert response.status_code == 502
    body = response.json()["error"]
    assert body["code"] == "provider_rejected"
    assert error["error"]["message"] in body["message"]
    assert route.call_count == 1, "a refusal is not retried"
    message = await db.fetchrow("select status::text, error, provider_message_id from messages")
    assert (message["status"], message["provider_message_id"]) == ("failed", None)
    assert message["error"]["code"] == code
    assert message["error"]["provider"] == error


@respx.mock
@pytest.mark.parametrize("status", [429, 400])
async def test_a_rate_limit_is_retried_after_the_time_meta_asks(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    kit: MetaMessagingKit,
    waits: list[float],
    status: int,
):
    """Error 613 (calls exceeded the rate limit) comes as a 400 too: by its code, the
    call was turned away, so it is retried."""
    world = await setup(db, kit.channel)
    respx.post(send_api(kit)).mock(
        side_effect=[
            httpx.Response(
                status, json=load(kit.channel, "error_rate_limited"), headers={"Retry-After": "3"}
            ),
            httpx.Response(200, json=load(kit.channel, "send_response")),
        ]
    )
    response = await send(client, settings, world)
    assert response.status_code == 201
    assert waits == [3.0]
    assert [a["status"] for a in response.json()["metadata"]["attempts"]] == [status, 200]
    assert await db.fetchval("select count(*) from messages") == 1


@respx.mock
async def test_meta_out_of_reach_fails_the_message_after_every_attempt(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    kit: MetaMessagingKit,
    waits: list[float],
):
    world = await setup(db, kit.channel)
    route = respx.post(send_api(kit)).mock(side_effect=httpx.ConnectError("no route to Meta"))
    response = await send(client, settings, world)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_unavailable"
    assert route.call_count == settings.provider_attempts
    message = await db.fetchrow("select status::text, error from messages")
    assert (message["status"], message["error"]["retryable"]) == ("failed", True)


@respx.mock
async def test_an_answer_without_a_message_id_leaves_the_message_unknown(
    client: httpx.AsyncClient, settings: Settings, db: Connection, kit: MetaMessagingKit
):
    """Meta said 200: it may well have sent the message, it just did not say which."""
    world = await setup(db, kit.channel)
    route = respx.post(send_api(kit)).mock(
        return_value=httpx.Response(200, json={"recipient_id": "1"})
    )
    response = await send(client, settings, world)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_outcome_unknown"
    assert route.call_count == 1
    message = await db.fetchrow("select status::text, error from messages")
    assert (message["status"], message["error"]["provider"]) == ("unknown", {"recipient_id": "1"})
