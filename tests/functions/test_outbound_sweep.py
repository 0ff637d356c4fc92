"""A server killed while sending: the message is never left `queued` or `sending`, the
Idempotency-Key is never held for a day, and nothing is sent twice. The kill is real
(the request task is cancelled where it stands); time is moved by ageing the rows."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import respx

from shared.db import Connection
from shared.inbox import sending
from shared.settings import Settings
from tests.fixtures import load
from tests.functions.test_send_message import GRAPH, TELEGRAM, send, setup

SWEEP = "/functions/v1/outbound-sweep"
KEY = {"headers": {"Idempotency-Key": "reply-killed"}}
CHANNELS = {
    "whatsapp": (GRAPH, httpx.Response(200, json=load("whatsapp", "send_text_response"))),
    "telegram": (
        f"{TELEGRAM}/sendMessage",
        httpx.Response(200, json=load("telegram", "send_message_response")),
    ),
}


@pytest.fixture(params=sorted(CHANNELS))
def channel(request: pytest.FixtureRequest) -> str:
    chosen: str = request.param
    return chosen


async def sweep(client: httpx.AsyncClient, settings: Settings) -> dict[str, int]:
    response = await client.post(SWEEP, headers={"Authorization": f"Bearer {settings.service_key}"})
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()
    return counts


async def killed_mid_send(
    client: httpx.AsyncClient, settings: Settings, world: dict[str, Any], route: respx.Route
) -> list[httpx.Request]:
    """The server dies while the provider has the request: the task is cancelled.
    Returns the requests the provider got (respx counts no call that raised)."""
    got: list[httpx.Request] = []

    async def die(request: httpx.Request) -> httpx.Response:
        got.append(request)
        raise asyncio.CancelledError

    route.side_effect = die
    with pytest.raises(asyncio.CancelledError):
        await send(client, settings, world, **KEY)
    assert len(got) == 1
    return got


async def expire_claims(db: Connection) -> None:
    await db.execute(
        "update messages set send_deadline = now() - interval '1 second',"
        " created_at = created_at - interval '1 hour'"
    )
    await db.execute(
        "update private.idempotency_keys set claimed_until = now() - interval '1 second'"
    )


async def state(db: Connection) -> list[tuple[str, Any]]:
    rows = await db.fetch(
        "select status::text as status, error ->> 'code' as code from messages"
        " where direction = 'outbound' order by created_at"
    )
    return [(r["status"], r["code"]) for r in rows]


@respx.mock
async def test_killed_mid_send_the_sweeper_marks_it_unknown_and_answers_the_key(
    client: httpx.AsyncClient, settings: Settings, db: Connection, channel: str
):
    world = await setup(db, channel)
    url, sent = CHANNELS[channel]
    route = respx.post(url)
    await killed_mid_send(client, settings, world, route)
    assert await state(db) == [("sending", None)]
    key = await db.fetchrow("select status_code, resource_id from private.idempotency_keys")
    assert key["status_code"] is None and key["resource_id"] is not None

    # a retry while the claim lasts waits for it, and sends nothing
    route.side_effect = None
    route.return_value = sent
    busy = await send(client, settings, world, **KEY)
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "send_in_progress"
    assert busy.json()["error"]["details"]["status"] == "sending"

    assert await sweep(client, settings) == {"unknown": 0, "failed": 0}, "still claimed"
    await expire_claims(db)
    assert await sweep(client, settings) == {"unknown": 1, "failed": 0}
    assert await state(db) == [("unknown", "interrupted")]
    assert await db.fetchval("select status_code from private.idempotency_keys") == 502

    retry = await send(client, settings, world, **KEY)
    assert retry.status_code == 502
    assert retry.json()["error"]["code"] == "provider_outcome_unknown"
    assert route.call_count == 0, "only the one call the killed server made"
    assert await sweep(client, settings) == {"unknown": 0, "failed": 0}


@respx.mock
async def test_a_retry_after_the_claim_expired_settles_it_without_sending(
    client: httpx.AsyncClient, settings: Settings, db: Connection, channel: str
):
    """No sweep ran yet: the retry itself finds the dead send and answers unknown."""
    world = await setup(db, channel)
    url, sent = CHANNELS[channel]
    route = respx.post(url)
    await killed_mid_send(client, settings, world, route)
    route.side_effect = None
    route.return_value = sent
    await expire_claims(db)

    retry = await send(client, settings, world, **KEY)
    assert retry.status_code == 502
    assert retry.json()["error"]["code"] == "provider_outcome_unknown"
    assert retry.headers["idempotent-replayed"] == "true"
    assert route.call_count == 0, "only the one call the killed server made"
    assert await state(db) == [("unknown", "interrupted")]
    assert await sweep(client, settings) == {"unknown": 0, "failed": 0}


@respx.mock
async def test_killed_before_the_provider_call_the_message_fails_and_the_key_is_free(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    monkeypatch: pytest.MonkeyPatch,
):
    world = await setup(db, "whatsapp")
    route = respx.post(GRAPH).mock(
        return_value=httpx.Response(200, json=load("whatsapp", "send_text_response"))
    )

    async def die(*args: Any) -> Any:
        raise asyncio.CancelledError

    with monkeypatch.context() as patch:  # the server dies after storing it queued
        patch.setattr(sending, "deliver", die)
        with pytest.raises(asyncio.CancelledError):
            await send(client, settings, world, **KEY)
    assert await state(db) == [("queued", None)]

    busy = await send(client, settings, world, **KEY)
    assert busy.status_code == 409, "the claim still lasts"

    await expire_claims(db)
    assert await sweep(client, settings) == {"unknown": 0, "failed": 1}
    assert await state(db) == [("failed", "not_started")]

    retry = await send(client, settings, world, **KEY)
    assert retry.status_code == 201, retry.text
    assert route.call_count == 1
    assert await state(db) == [("failed", "not_started"), ("sent", None)]


@respx.mock
async def test_the_real_outcome_arriving_late_replaces_unknown(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    """A slow send outlives its claim and is swept as unknown; its answer, when it
    comes, is the truth: the message is sent, and the key answers so."""
    world = await setup(db, "whatsapp")
    answer = httpx.Response(200, json=load("whatsapp", "send_text_response"))

    async def slow(request: httpx.Request) -> httpx.Response:
        await expire_claims(db)
        assert await sweep(client, settings) == {"unknown": 1, "failed": 0}
        return answer

    route = respx.post(GRAPH).mock(side_effect=slow)
    response = await send(client, settings, world, **KEY)
    assert response.status_code == 201
    assert await state(db) == [("sent", None)]
    again = await send(client, settings, world, **KEY)
    assert (again.status_code, again.json()) == (201, response.json())
    assert route.call_count == 1


async def test_the_sweeper_leaves_live_sends_alone_and_needs_the_service_key(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db, "whatsapp")
    for status, deadline in (("queued", None), ("sending", "now() + interval '1 minute'")):
        await db.execute(
            "insert into messages (organization_id, conversation_id, channel_account_id,"
            " direction, sender_type, status, body, send_deadline)"
            f" values ($1, $2, $3, 'outbound', 'user', '{status}', 'hi', {deadline or 'null'})",
            world["org"],
            world["conversation"],
            world["account"].id,
        )
    assert await sweep(client, settings) == {"unknown": 0, "failed": 0}
    assert sorted(s for s, _ in await state(db)) == ["queued", "sending"]
    assert (await client.post(SWEEP)).status_code == 401
