"""Replies by e-mail: send-message through Mailgun's messages API (mocked at the HTTP
layer with its documented answers), threaded so the customer's mail client keeps them
in the conversation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from shared.channels.email.parse import ACCOUNT_VARIABLE
from shared.db import Connection
from shared.settings import Settings
from tests.channels.email.kit import EmailKit
from tests.channels.kit import Account, Delivery
from tests.fixtures import load
from tests.support import auth, make_contact, make_org, make_user, member

KIT = EmailKit()
MESSAGES = "https://api.mailgun.net/v3/mg.northwind.example/messages"
FIRST = "CAKx7Vb3qP2nN1hZf0Q8sYp1eXk2vW9uT@mail.fastmail.example"
OURS = "20261125093412.7f3c2e1d9a8b4c60@mg.northwind.example"
KERRY = "kerry.fisher@fastmail.example"


async def setup(
    db: Connection, *, subject: str | None = "Do you ship to Lisbon?", days_since: float = 0
) -> dict[str, Any]:
    """Kerry's mail FIRST, in its conversation, waiting for an agent's reply."""
    org = await make_org(db, await make_user(db))
    account: Account = await KIT.create_account(db, org)
    contact = await make_contact(db, org, name="Kerry Fisher", email=KERRY)
    await db.execute(
        "insert into contact_identities (organization_id, contact_id, channel, external_id)"
        " values ($1, $2, 'email', $3)",
        org,
        contact,
        KERRY,
    )
    written = datetime.now(UTC) - timedelta(days=days_since, minutes=5)
    conversation = await db.fetchval(
        "insert into conversations (organization_id, contact_id, channel_account_id,"
        " thread_key, subject, last_inbound_at) values ($1, $2, $3, $4, $5, $6) returning id",
        org,
        contact,
        account.id,
        FIRST,
        subject,
        written,
    )
    await db.execute(
        "insert into messages (organization_id, conversation_id, channel_account_id,"
        " direction, sender_type, body, status, provider_message_id, created_at)"
        " values ($1, $2, $3, 'inbound', 'contact', 'Do you ship to Lisbon?', 'received', $4, $5)",
        org,
        conversation,
        account.id,
        FIRST,
        written,
    )
    return {
        "org": org,
        "agent": await member(db, org, "agent"),
        "account": account,
        "conversation": conversation,
    }


async def send(
    client: httpx.AsyncClient, settings: Settings, world: dict[str, Any], **body: Any
) -> httpx.Response:
    payload = {"conversation_id": str(world["conversation"]), "text": "We do! 2 days.", **body}
    return await client.post(
        "/functions/v1/send-message", json=payload, headers=auth(settings, world["agent"])
    )


def sent_form(route: respx.Route, call: int = -1) -> dict[str, str]:
    fields = parse_qs(route.calls[call].request.content.decode(), keep_blank_values=True)
    assert all(len(v) == 1 for v in fields.values())
    return {k: v[0] for k, v in fields.items()}


def queued(message_id: str) -> httpx.Response:
    return httpx.Response(200, json={"id": f"<{message_id}>", "message": "Queued. Thank you."})


@respx.mock
async def test_a_reply_is_threaded_and_stored_under_its_message_id(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db)
    route = respx.post(MESSAGES).mock(
        return_value=httpx.Response(200, json=load("email", "send_response"))
    )
    response = await send(client, settings, world)
    assert response.status_code == 201, response.text
    assert (response.json()["status"], response.json()["provider_message_id"]) == ("sent", OURS)
    request = route.calls.last.request
    key = base64.b64encode(f"api:{KIT.api_key}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {key}"
    assert sent_form(route) == {
        "from": "Northwind Support <support@mg.northwind.example>",
        "to": KERRY,
        "subject": "Re: Do you ship to Lisbon?",
        "text": "We do! 2 days.",
        "html": "We do! 2 days.",
        "h:In-Reply-To": f"<{FIRST}>",
        "h:References": f"<{FIRST}>",
        f"v:{ACCOUNT_VARIABLE}": str(world["account"].id),
        "o:tracking-opens": "yes",
    }


@respx.mock
async def test_the_next_reply_references_the_whole_thread(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db)
    route = respx.post(MESSAGES).mock(side_effect=[queued(OURS), queued("second@mg.example")])
    await send(client, settings, world)
    await send(client, settings, world, text="Anything else?")
    second = sent_form(route)
    assert second["h:In-Reply-To"] == f"<{OURS}>"
    assert second["h:References"] == f"<{FIRST}> <{OURS}>"  # oldest first


@respx.mock
@pytest.mark.parametrize(
    ("subject", "sent"),
    [
        ("Do you ship to Lisbon?", "Re: Do you ship to Lisbon?"),
        ("Re: Do you ship to Lisbon?", "Re: Do you ship to Lisbon?"),
        ("RE: Order 42", "RE: Order 42"),
        ("Re[2]: Order 42", "Re[2]: Order 42"),
        ("Fwd: Order 42", "Re: Fwd: Order 42"),
        (None, "Re:"),
    ],
)
async def test_re_is_never_doubled(
    client: httpx.AsyncClient, settings: Settings, db: Connection, subject: str | None, sent: str
):
    world = await setup(db, subject=subject)
    route = respx.post(MESSAGES).mock(return_value=queued(OURS))
    assert (await send(client, settings, world)).status_code == 201
    assert sent_form(route)["subject"] == sent


@respx.mock
async def test_email_has_no_reply_window_and_sends_media_as_a_link(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db, days_since=60)
    route = respx.post(MESSAGES).mock(return_value=queued(OURS))
    response = await send(
        client,
        settings,
        world,
        text="Our catalogue <2026>:",
        media_url="https://cdn.example/catalogue.pdf",
        media_type="document",
    )
    assert response.status_code == 201, response.text
    form = sent_form(route)
    assert form["text"] == "Our catalogue <2026>:\n\nhttps://cdn.example/catalogue.pdf"
    assert form["html"] == (
        "Our catalogue &lt;2026&gt;:<br>\n<br>\nhttps://cdn.example/catalogue.pdf"
    )


@respx.mock
async def test_an_eu_domain_is_sent_through_mailguns_eu_api_without_open_tracking(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db)
    await db.execute(
        'update channel_accounts set settings = settings || \'{"region": "eu",'
        ' "track_opens": false}\' where id = $1',
        world["account"].id,
    )
    us = respx.post(MESSAGES)
    eu = respx.post("https://api.eu.mailgun.net/v3/mg.northwind.example/messages").mock(
        return_value=queued(OURS)
    )
    assert (await send(client, settings, world)).status_code == 201
    assert not us.called
    assert sent_form(eu)["o:tracking-opens"] == "no"


@respx.mock
@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            httpx.Response(400, json=load("email", "error_invalid_address")),
            "Mailgun: to parameter is not a valid address. please check documentation",
        ),
        (httpx.Response(401, text="Forbidden"), "Mailgun: Forbidden"),
        (
            httpx.Response(404, json=load("email", "error_domain_not_found")),
            "Mailgun: Domain not found: mg.northwind.example",
        ),
    ],
)
async def test_a_refusal_is_a_502_with_mailguns_reason_and_the_message_failed(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    answer: httpx.Response,
    reason: str,
):
    world = await setup(db)
    route = respx.post(MESSAGES).mock(return_value=answer)
    response = await send(client, settings, world)
    assert response.status_code == 502
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (
        "provider_rejected",
        f"The provider refused the message: {reason}",
    )
    assert route.call_count == 1, "a refusal is not retried"
    message = await db.fetchrow(
        "select status::text, error, provider_message_id from messages where direction = 'outbound'"
    )
    assert (message["status"], message["provider_message_id"]) == ("failed", None)
    assert message["error"]["message"] == reason
    assert message["error"]["status"] == answer.status_code


@respx.mock
@pytest.mark.parametrize(
    ("answer", "wait"),
    [
        (
            httpx.Response(
                429, json={"message": "Too many requests"}, headers={"Retry-After": "2"}
            ),
            2.0,
        ),
        (httpx.Response(429, json={"retry-seconds": 3}), 3.0),
    ],
)
async def test_a_rate_limit_is_retried_after_the_time_mailgun_asks(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    waits: list[float],
    answer: httpx.Response,
    wait: float,
):
    world = await setup(db)
    respx.post(MESSAGES).mock(side_effect=[answer, queued(OURS)])
    response = await send(client, settings, world)
    assert response.status_code == 201, response.text
    assert waits == [wait]
    assert [a["status"] for a in response.json()["metadata"]["attempts"]] == [429, 200]


@respx.mock
async def test_mailgun_out_of_reach_fails_the_message_with_every_attempt(
    client: httpx.AsyncClient, settings: Settings, db: Connection, waits: list[float]
):
    """Connections refused and rate limits: Mailgun surely took nothing, so each is
    retried, and in the end nothing was sent: 503, the message failed."""
    world = await setup(db)
    route = respx.post(MESSAGES).mock(
        side_effect=[httpx.ConnectError("connection refused"), httpx.ConnectTimeout("x")]
        + [httpx.Response(429, json={"message": "Too many requests"})]
        * (settings.provider_attempts - 2)
    )
    response = await send(client, settings, world)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "provider_unavailable"
    assert route.call_count == settings.provider_attempts
    message = await db.fetchrow(
        "select status::text, error, metadata from messages where direction = 'outbound'"
    )
    assert (message["status"], message["error"]["outcome"]) == ("failed", "unavailable")
    assert len(message["metadata"]["attempts"]) == settings.provider_attempts


@respx.mock
async def test_a_mailgun_server_error_is_not_retried_and_leaves_the_mail_unknown(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    """Mailgun recommends retrying its 500s, but a send it may have queued is never
    repeated by itself: a second mail would reach the customer."""
    world = await setup(db)
    route = respx.post(MESSAGES).mock(return_value=httpx.Response(503, text="Service Unavailable"))
    response = await send(client, settings, world)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_outcome_unknown"
    assert route.call_count == 1
    message = await db.fetchrow(
        "select status::text, error from messages where direction = 'outbound'"
    )
    assert message["status"] == "unknown"
    assert (message["error"]["status"], message["error"]["provider"]) == (
        503,
        "Service Unavailable",
    )


@respx.mock
async def test_the_customers_answer_joins_the_thread_and_events_track_our_reply(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db)
    account = world["account"]
    respx.post(MESSAGES).mock(return_value=httpx.Response(200, json=load("email", "send_response")))
    sent = (await send(client, settings, world)).json()

    async def deliver(delivery: Delivery) -> dict[str, int]:
        response = await client.post(
            f"/functions/v1/email-webhook/{account.id}",
            content=delivery.body,
            headers=delivery.headers,
        )
        assert response.status_code == 200, response.text
        summary: dict[str, int] = response.json()
        return summary

    for fixture in ("event_delivered", "event_opened"):
        data = load("email", fixture)["event-data"]
        data["user-variables"] = {ACCOUNT_VARIABLE: str(account.id)}
        assert (await deliver(KIT.event(account, data)))["processed"] == 1
    answer = KIT.form(account, load("email", "inbound_reply"))  # In-Reply-To: OURS
    assert (await deliver(answer))["processed"] == 1

    ours = await db.fetchrow("select status::text, read_at from messages where id = $1", sent["id"])
    assert ours["status"] == "read" and ours["read_at"] is not None
    rows = await db.fetch("select conversation_id, direction::text from messages")
    assert sorted(r["direction"] for r in rows) == ["inbound", "inbound", "outbound"]
    assert {r["conversation_id"] for r in rows} == {world["conversation"]}
