"""Connecting Messenger pages and Instagram accounts through channel-accounts: the
token is checked with Meta, the app is subscribed to the account's messaging webhooks,
the secrets are stored apart and never answered."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import httpx
import pytest
import respx

from shared.db import Connection
from shared.settings import Settings
from tests.channels.instagram.kit import INSTAGRAM_GRAPH
from tests.channels.meta.kit import GRAPH
from tests.fixtures import load
from tests.functions.test_channel_accounts import URL, connect
from tests.support import auth, make_org, make_user, member

PAGE_ID = "104938501726344"
IG_USER_ID = "17841405822304914"
MESSENGER_SETUP = {
    "page_id": PAGE_ID,
    "page_access_token": "EAAP-secret-page-token",
    "app_secret": "messenger-app-secret-value",
    "verify_token": "verify-page-token-value",
}
INSTAGRAM_SETUP = {
    "access_token": "IGAAT-secret-user-token",
    "app_secret": "instagram-app-secret-value",
    "verify_token": "verify-insta-token-value",
}
SUBSCRIBE = {
    "messenger": f"{GRAPH}/{PAGE_ID}/subscribed_apps",
    "instagram": f"{INSTAGRAM_GRAPH}/me/subscribed_apps",
}
ME = {"messenger": f"{GRAPH}/me", "instagram": f"{INSTAGRAM_GRAPH}/me"}
SETUPS = {"messenger": MESSENGER_SETUP, "instagram": INSTAGRAM_SETUP}


@pytest.fixture
async def org(db: Connection) -> dict[str, UUID]:
    org_id = await make_org(db, await make_user(db))
    return {
        "org": org_id,
        "admin": await member(db, org_id, "admin"),
        "agent": await member(db, org_id, "agent"),
    }


def mock_meta(channel: str, me: Any = None) -> tuple[respx.Route, respx.Route]:
    answer = me if me is not None else load(channel, "page" if channel == "messenger" else "me")
    return (
        respx.get(ME[channel]).respond(200, json=answer),
        respx.post(SUBSCRIBE[channel]).respond(200, json=load(channel, "subscribed_apps")),
    )


async def stored_secrets(db: Connection, account_id: str) -> Any:
    return await db.fetchval(
        "select secrets from private.channel_credentials where channel_account_id = $1",
        UUID(account_id),
    )


@respx.mock
async def test_connecting_a_messenger_page_checks_the_token_and_subscribes_the_page(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    me, subscribe = mock_meta("messenger")
    response = await connect(client, settings, org, "messenger", MESSENGER_SETUP)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["channel"], body["external_id"]) == ("messenger", PAGE_ID)
    assert body["settings"] == {"page_name": "Lisbon E-Bikes"}
    assert body["webhook_url"] == (
        f"https://connectgain.example/functions/v1/messenger-webhook/{body['id']}"
    )
    for request in (me.calls.last.request, subscribe.calls.last.request):
        assert request.headers["authorization"] == "Bearer EAAP-secret-page-token"
    fields = subscribe.calls.last.request.url.params["subscribed_fields"].split(",")
    assert {"messages", "message_echoes", "message_deliveries", "message_reads"} <= set(fields)
    assert {"messaging_postbacks", "message_reactions", "message_edits"} <= set(fields)
    for secret in MESSENGER_SETUP.values():
        if secret != PAGE_ID:
            assert secret not in response.text
    assert await stored_secrets(db, body["id"]) == {
        k: v for k, v in MESSENGER_SETUP.items() if k != "page_id"
    }


@respx.mock
async def test_connecting_instagram_reads_the_account_id_from_the_token(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    me, subscribe = mock_meta("instagram")
    response = await connect(client, settings, org, "instagram", INSTAGRAM_SETUP)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["channel"], body["external_id"]) == ("instagram", IG_USER_ID)
    assert body["settings"] == {"username": "atelier.linho", "account_name": "Atelier Linho"}
    assert me.calls.last.request.url.params["fields"] == "user_id,username,name"
    fields = subscribe.calls.last.request.url.params["subscribed_fields"].split(",")
    assert set(fields) == {"messages", "messaging_seen", "messaging_postbacks", "message_reactions"}
    assert subscribe.calls.last.request.headers["authorization"] == "Bearer IGAAT-secret-user-token"
    for secret in INSTAGRAM_SETUP.values():
        assert secret not in response.text
    assert await stored_secrets(db, body["id"]) == INSTAGRAM_SETUP

    listed = await client.get(
        URL, params={"organization_id": str(org["org"])}, headers=auth(settings, org["agent"])
    )
    assert [a["id"] for a in listed.json()["data"]] == [body["id"]]
    assert "IGAAT-secret-user-token" not in listed.text


@respx.mock
async def test_an_instagram_me_answer_wrapped_in_data_is_read_too(
    client: httpx.AsyncClient, settings: Settings, org: dict[str, UUID]
):
    mock_meta("instagram", me={"data": [load("instagram", "me")]})
    response = await connect(client, settings, org, "instagram", INSTAGRAM_SETUP)
    assert response.status_code == 201, response.text
    assert response.json()["external_id"] == IG_USER_ID


@respx.mock
@pytest.mark.parametrize("channel", ["messenger", "instagram"])
async def test_a_token_meta_refuses_is_a_422_and_nothing_is_stored(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    org: dict[str, UUID],
    channel: str,
):
    respx.get(ME[channel]).respond(400, json=load(channel, "error_invalid_token"))
    subscribe = respx.post(SUBSCRIBE[channel])
    response = await connect(client, settings, org, channel, SETUPS[channel])
    assert response.status_code == 422
    assert (
        load(channel, "error_invalid_token")["error"]["message"]
        in (response.json()["error"]["message"])
    )
    assert not subscribe.called
    assert await db.fetchval("select count(*) from channel_accounts") == 0


@respx.mock
@pytest.mark.parametrize(
    ("channel", "me", "reason"),
    [
        ("messenger", {"name": "Another page", "id": "100000000000001"}, "not one of page"),
        ("instagram", {"id": "8123456789012345", "username": "someone"}, "no user_id"),
    ],
)
async def test_a_token_of_the_wrong_account_is_a_422_and_nothing_is_subscribed(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    org: dict[str, UUID],
    channel: str,
    me: dict[str, str],
    reason: str,
):
    _, subscribe = mock_meta(channel, me=me)
    response = await connect(client, settings, org, channel, SETUPS[channel])
    assert response.status_code == 422
    assert reason in response.json()["error"]["message"]
    assert not subscribe.called
    assert await db.fetchval("select count(*) from channel_accounts") == 0


@respx.mock
async def test_a_failed_subscription_is_a_422_and_nothing_is_stored(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    respx.get(ME["messenger"]).respond(200, json=load("messenger", "page"))
    respx.post(SUBSCRIBE["messenger"]).respond(400, json=load("messenger", "error_invalid_token"))
    response = await connect(client, settings, org, "messenger", MESSENGER_SETUP)
    assert response.status_code == 422
    assert await db.fetchval("select count(*) from channel_accounts") == 0


@respx.mock
@pytest.mark.parametrize(
    ("channel", "setup", "field"),
    [
        ("messenger", {**MESSENGER_SETUP, "page_id": "lisbon-bikes"}, "page_id"),
        ("messenger", {**MESSENGER_SETUP, "verify_token": "short"}, "verify_token"),
        (
            "messenger",
            {k: v for k, v in MESSENGER_SETUP.items() if k != "app_secret"},
            "app_secret",
        ),
        ("instagram", {**INSTAGRAM_SETUP, "access_token": ""}, "access_token"),
        (
            "instagram",
            {k: v for k, v in INSTAGRAM_SETUP.items() if k != "app_secret"},
            "app_secret",
        ),
    ],
)
async def test_an_invalid_setup_is_a_422_naming_the_field_before_meta_is_called(
    client: httpx.AsyncClient,
    settings: Settings,
    org: dict[str, UUID],
    channel: str,
    setup: dict[str, Any],
    field: str,
):
    meta = respx.route(url__regex=r"^https://graph\.")
    response = await connect(client, settings, org, channel, setup)
    assert response.status_code == 422
    assert field in json.dumps(response.json()["error"]["details"])
    assert not meta.called


@respx.mock
@pytest.mark.parametrize("channel", ["messenger", "instagram"])
async def test_disabling_unsubscribes_the_app(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    org: dict[str, UUID],
    channel: str,
):
    mock_meta(channel)
    account = (await connect(client, settings, org, channel, SETUPS[channel])).json()
    unsubscribe = respx.delete(SUBSCRIBE[channel]).respond(200, json={"success": True})
    response = await client.delete(f"{URL}/{account['id']}", headers=auth(settings, org["admin"]))
    assert response.status_code == 200
    assert response.json()["status"] == "disabled"
    assert unsubscribe.called
    token = SETUPS[channel].get("page_access_token") or SETUPS[channel]["access_token"]
    assert unsubscribe.calls.last.request.headers["authorization"] == f"Bearer {token}"
