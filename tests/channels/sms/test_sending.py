"""Sending SMS through Twilio's Messages API, and connecting a Twilio number."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from shared.db import Connection
from shared.settings import Settings
from tests.fixtures import load
from tests.functions.test_send_message import send, setup
from tests.support import auth, make_org, make_user, member

AC = "AC3f4a2b9c8d7e6f5a4b3c2d1e0f9a8b7c"
MESSAGES = f"https://api.twilio.com/2010-04-01/Accounts/{AC}/Messages.json"
NUMBERS = f"https://api.twilio.com/2010-04-01/Accounts/{AC}/IncomingPhoneNumbers"


def form(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode())


@respx.mock
async def test_an_sms_is_sent_with_our_status_callback(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db, "sms", hours_since_inbound=24 * 90)  # SMS has no reply window
    route = respx.post(MESSAGES).mock(
        return_value=httpx.Response(201, json=load("sms", "send_response"))
    )
    response = await send(client, settings, world)
    assert response.status_code == 201, response.text
    assert response.json()["provider_message_id"] == "SM9f1c2e3d4b5a69788a7b6c5d4e3f2a1b"
    request = route.calls.last.request
    assert form(request) == {
        "To": ["+14155550123"],
        "From": ["+14155550100"],
        "Body": ["We do! Delivery in 2 days."],
        "StatusCallback": [
            f"https://connectgain.example/functions/v1/sms-webhook/{world['account'].id}"
        ],
    }
    expected = httpx.BasicAuth(AC, "twilio-auth-token-0123456789")
    assert request.headers["authorization"] == expected._auth_header


@respx.mock
async def test_mms_goes_with_its_media_url(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db, "sms")
    route = respx.post(MESSAGES).mock(
        return_value=httpx.Response(201, json=load("sms", "send_response"))
    )
    await send(
        client,
        settings,
        world,
        text="Your receipt",
        media_url="https://cdn.example/r.pdf",
        media_type="document",
    )
    assert form(route.calls.last.request)["MediaUrl"] == ["https://cdn.example/r.pdf"]


@respx.mock
async def test_twilio_refusing_the_number_is_a_502_and_a_failed_message(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db, "sms")
    respx.post(MESSAGES).mock(
        return_value=httpx.Response(400, json=load("sms", "error_invalid_to"))
    )
    response = await send(client, settings, world)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_rejected"
    assert "Invalid 'To' Phone Number" in response.json()["error"]["message"]
    assert await db.fetchval("select error ->> 'code' from messages") == "21211"


@respx.mock
async def test_an_opted_out_contact_gets_no_sms(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await setup(db, "sms")
    await db.execute("update contacts set opted_out_channels = '{sms}'")
    route = respx.post(MESSAGES)
    response = await send(client, settings, world)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "opted_out"
    assert not route.called
    assert await db.fetchval("select count(*) from messages") == 0


@pytest.fixture
async def admin(db: Connection) -> dict[str, Any]:
    owner = await make_user(db)
    org = await make_org(db, owner)
    return {"org": org, "admin": await member(db, org, "admin")}


SETUP = {
    "account_sid": AC,
    "auth_token": "twilio-auth-token-0123456789",
    "phone_number": "+14155550100",
}


async def connect(
    client: httpx.AsyncClient, settings: Settings, admin: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        "/functions/v1/channel-accounts",
        json={
            "organization_id": str(admin["org"]),
            "channel": "sms",
            "name": "Support line",
            "setup": SETUP,
        },
        headers=auth(settings, admin["admin"]),
    )


@respx.mock
async def test_connecting_a_twilio_number_points_its_sms_webhook_here(
    client: httpx.AsyncClient, settings: Settings, db: Connection, admin: dict[str, Any]
):
    respx.get(f"{NUMBERS}.json").mock(
        return_value=httpx.Response(200, json=load("sms", "incoming_phone_numbers"))
    )
    update = respx.post(f"{NUMBERS}/PN2a0747eba6abf96b7e3c3ff0b4530f6e.json").mock(
        return_value=httpx.Response(200, json=load("sms", "incoming_phone_number_updated"))
    )
    response = await connect(client, settings, admin)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["external_id"] == "+14155550100"
    assert form(update.calls.last.request) == {
        "SmsUrl": [body["webhook_url"]],
        "SmsMethod": ["POST"],
    }
    assert "twilio-auth-token" not in response.text


@respx.mock
@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (httpx.Response(401, json=load("sms", "error_authenticate")), "Authenticate"),
        (
            httpx.Response(200, json=load("sms", "no_incoming_phone_numbers")),
            "is not a number of this Twilio account",
        ),
    ],
)
async def test_bad_credentials_or_a_foreign_number_are_a_422(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    admin: dict[str, Any],
    answer: httpx.Response,
    message: str,
):
    respx.get(f"{NUMBERS}.json").mock(return_value=answer)
    response = await connect(client, settings, admin)
    assert response.status_code == 422
    assert message in response.json()["error"]["message"]
    assert await db.fetchval("select count(*) from channel_accounts") == 0
