"""send-message against a failing provider, channel by channel: a send is retried only
when the provider surely did not act, an ambiguous failure is `unknown` and never sent
again (not by us, not by a retry with the same Idempotency-Key), and provider trouble
is a 502/503 with a code, never a 500. Payloads are shaped as each provider documents."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import respx

from shared.db import Connection
from shared.settings import Settings
from tests.channels.sms.test_sending import MESSAGES as TWILIO
from tests.fixtures import load
from tests.functions.test_send_message import GRAPH, TELEGRAM, send, setup

MESSENGER = "https://graph.facebook.com/v21.0/104938501726344/messages"


@dataclass(frozen=True)
class Provider:
    channel: str
    url: str
    sent: httpx.Response  # its documented success
    server_error: httpx.Response  # a 5xx, as it documents its errors
    throttled: httpx.Response  # its documented "not processed" answer
    odd_success: httpx.Response  # a 2xx without what it documents


PROVIDERS = [
    Provider(
        "whatsapp",
        GRAPH,
        httpx.Response(200, json=load("whatsapp", "send_text_response")),
        httpx.Response(500, json=load("whatsapp", "error_something_went_wrong")),
        # Cloud API throughput (130429) comes as a 400; its code says it was turned away
        httpx.Response(400, json=load("whatsapp", "error_rate_limited")),
        httpx.Response(
            200,
            json={"messaging_product": "whatsapp", "contacts": [{"wa_id": "16315551181"}]},
        ),
    ),
    Provider(
        "messenger",
        MESSENGER,
        httpx.Response(200, json=load("messenger", "send_response")),
        httpx.Response(500, json=load("messenger", "error_unknown")),
        httpx.Response(400, json=load("messenger", "error_rate_limited")),
        httpx.Response(200, json={"recipient_id": "6945632145592814"}),
    ),
    Provider(
        "telegram",
        f"{TELEGRAM}/sendMessage",
        httpx.Response(200, json=load("telegram", "send_message_response")),
        httpx.Response(500, json=load("telegram", "internal_server_error")),
        httpx.Response(429, json=load("telegram", "too_many_requests")),
        httpx.Response(200, json={"ok": True, "result": True}),
    ),
    Provider(
        "sms",
        TWILIO,
        httpx.Response(201, json=load("sms", "send_response")),
        httpx.Response(500, json=load("sms", "error_internal")),
        httpx.Response(429, json=load("sms", "error_rate_limited")),
        httpx.Response(201, text="<html><body>Created</body></html>"),
    ),
]


@pytest.fixture(params=PROVIDERS, ids=lambda p: p.channel)
def provider(request: pytest.FixtureRequest) -> Provider:
    chosen: Provider = request.param
    return chosen


def keyed(key: str) -> dict[str, Any]:
    return {"headers": {"Idempotency-Key": key}}


async def outbound(db: Connection) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "select status::text as status, error, provider_message_id, metadata"
        " from messages where direction = 'outbound' order by created_at"
    )
    return [dict(r) for r in rows]


@respx.mock
async def test_a_5xx_after_the_request_left_is_unknown_and_never_sent_again(
    client: httpx.AsyncClient, settings: Settings, db: Connection, provider: Provider
):
    world = await setup(db, provider.channel)
    route = respx.post(provider.url).mock(return_value=provider.server_error)
    first = await send(client, settings, world, **keyed("reply-500"))
    assert first.status_code == 502, first.text
    error = first.json()["error"]
    assert error["code"] == "provider_outcome_unknown"
    assert error["details"]["status"] == "unknown"
    [message] = await outbound(db)
    assert message["status"] == "unknown"
    assert message["provider_message_id"] is None
    # the provider's own words, for the person who decides
    assert message["error"]["status"] == 500
    assert message["error"]["provider"] == provider.server_error.json()
    assert [a["status"] for a in message["metadata"]["attempts"]] == [500]

    again = await send(client, settings, world, **keyed("reply-500"))
    assert (again.status_code, again.json()) == (502, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert route.call_count == 1, "the provider may have sent it: never a second copy"
    assert len(await outbound(db)) == 1


@respx.mock
@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("no answer within the timeout"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
    ids=["read-timeout", "disconnected"],
)
async def test_no_answer_after_the_request_left_is_unknown_and_not_retried(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    provider: Provider,
    failure: Exception,
    waits: list[float],
):
    world = await setup(db, provider.channel)
    route = respx.post(provider.url).mock(side_effect=[failure, provider.sent])
    response = await send(client, settings, world)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_outcome_unknown"
    assert route.call_count == 1
    assert waits == []
    [message] = await outbound(db)
    assert message["status"] == "unknown"
    assert type(failure).__name__ in message["error"]["message"]


@respx.mock
async def test_a_refused_connection_is_retried_and_sent_once(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    provider: Provider,
    waits: list[float],
):
    world = await setup(db, provider.channel)
    route = respx.post(provider.url).mock(
        side_effect=[httpx.ConnectError("[Errno 111] Connection refused"), provider.sent]
    )
    response = await send(client, settings, world)
    assert response.status_code == 201, response.text
    assert route.call_count == 2
    assert waits == [settings.provider_backoff_seconds]
    [message] = await outbound(db)
    assert message["status"] == "sent"
    assert [a["status"] for a in message["metadata"]["attempts"]] == [
        None,
        provider.sent.status_code,
    ]


@respx.mock
async def test_a_throttled_send_is_retried_and_sent_once(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    provider: Provider,
    waits: list[float],
):
    world = await setup(db, provider.channel)
    route = respx.post(provider.url).mock(side_effect=[provider.throttled, provider.sent])
    response = await send(client, settings, world, **keyed("reply-429"))
    assert response.status_code == 201, response.text
    assert route.call_count == 2
    assert len(waits) == 1
    [message] = await outbound(db)
    assert (message["status"], message["error"]) == ("sent", None)
    assert message["provider_message_id"] == response.json()["provider_message_id"]


@respx.mock
async def test_throttled_to_the_end_fails_and_a_retry_with_the_same_key_sends(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    provider: Provider,
    waits: list[float],
):
    world = await setup(db, provider.channel)
    route = respx.post(provider.url).mock(
        side_effect=[provider.throttled] * settings.provider_attempts + [provider.sent]
    )
    first = await send(client, settings, world, **keyed("reply-throttled"))
    assert first.status_code == 503, first.text
    assert first.json()["error"]["code"] == "provider_unavailable"
    assert route.call_count == settings.provider_attempts
    [failed] = await outbound(db)
    assert (failed["status"], failed["error"]["outcome"]) == ("failed", "unavailable")
    assert await db.fetchval("select count(*) from private.idempotency_keys") == 0, (
        "nothing was sent: the refusal is not the key's answer"
    )

    again = await send(client, settings, world, **keyed("reply-throttled"))
    assert again.status_code == 201, again.text
    assert "idempotent-replayed" not in again.headers
    assert route.call_count == settings.provider_attempts + 1
    assert [m["status"] for m in await outbound(db)] == ["failed", "sent"]


@respx.mock
async def test_a_retry_after_beyond_the_bound_is_not_waited_for(
    client: httpx.AsyncClient, settings: Settings, db: Connection, waits: list[float]
):
    world = await setup(db, "sms")
    route = respx.post(TWILIO).mock(
        return_value=httpx.Response(
            429, json=load("sms", "error_rate_limited"), headers={"Retry-After": "3600"}
        )
    )
    response = await send(client, settings, world)
    assert response.status_code == 503
    assert response.json()["error"]["details"]["retry_after"] == 3600.0
    assert (route.call_count, waits) == (1, [])


@respx.mock
@pytest.mark.parametrize("body", ["documented-shape-missing", "not-json"])
async def test_a_success_without_what_the_provider_documents_is_unknown_and_a_502(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    provider: Provider,
    body: str,
):
    world = await setup(db, provider.channel)
    answer = (
        provider.odd_success
        if body == "documented-shape-missing"
        else httpx.Response(provider.sent.status_code, text="OK")
    )
    route = respx.post(provider.url).mock(return_value=answer)
    response = await send(client, settings, world, **keyed("reply-odd"))
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "provider_outcome_unknown"
    assert route.call_count == 1
    [message] = await outbound(db)
    assert message["status"] == "unknown"
    assert message["error"]["status"] == answer.status_code
    again = await send(client, settings, world, **keyed("reply-odd"))
    assert again.status_code == 502
    assert route.call_count == 1


@respx.mock
async def test_whatsapps_pair_rate_limit_is_retried(
    client: httpx.AsyncClient, settings: Settings, db: Connection, waits: list[float]
):
    world = await setup(db, "whatsapp")
    route = respx.post(GRAPH).mock(
        side_effect=[
            httpx.Response(400, json=load("whatsapp", "error_pair_rate_limited")),
            httpx.Response(200, json=load("whatsapp", "send_text_response")),
        ]
    )
    response = await send(client, settings, world)
    assert response.status_code == 201
    assert route.call_count == 2
    sent = [json.loads(call.request.content) for call in route.calls]
    assert sent[0] == sent[1], "the same message, retried"


@respx.mock
async def test_an_unknown_outcome_tells_automations_and_the_inbox(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db, "whatsapp")
    respx.post(GRAPH).mock(
        return_value=httpx.Response(500, json=load("whatsapp", "error_something_went_wrong"))
    )
    assert (await send(client, settings, world)).status_code == 502
    events = await db.fetch(
        "select event_type, payload from outbox_events where event_type like 'message.%'"
    )
    assert [(e["event_type"], e["payload"]["previous_status"]) for e in events] == [
        ("message.status_changed", "sending")
    ]
    broadcast = await db.fetch(
        "select payload -> 'record' ->> 'status' as status from realtime.messages"
        " where topic = $1 and payload ->> 'table' = 'messages' order by inserted_at",
        f"org:{world['org']}:inbox",
    )
    assert [b["status"] for b in broadcast] == ["queued", "sending", "unknown"]


@respx.mock
async def test_an_account_missing_its_token_fails_the_message_without_a_call(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    """Our own misconfiguration: nothing reached the provider, the row is not left
    sending, and the key is free for a retry once it is fixed."""
    world = await setup(db, "whatsapp")
    await db.execute("update private.channel_credentials set secrets = secrets - 'access_token'")
    route = respx.post(GRAPH)
    response = await send(client, settings, world, **keyed("reply-misconfigured"))
    assert response.status_code == 500
    assert "access_token" in response.json()["error"]["message"]
    assert not route.called
    [message] = await outbound(db)
    assert (message["status"], message["error"]["outcome"]) == ("failed", "not_sent")
    assert await db.fetchval("select count(*) from private.idempotency_keys") == 0
