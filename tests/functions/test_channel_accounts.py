from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import httpx
import pytest
import respx

from shared.db import Connection
from shared.settings import Settings
from tests.fixtures import load
from tests.support import auth, make_org, make_user, member

URL = "/functions/v1/channel-accounts"
TOKEN = "7123456789:AAH-test-token-abcdefghijklmnop"
BOT = f"https://api.telegram.org/bot{TOKEN}"
WHATSAPP_SETUP = {
    "phone_number_id": "106540352242922",
    "waba_id": "102290129340398",
    "display_phone_number": "+1 555 078 3881",
    "access_token": "EAAG-secret-token",
    "app_secret": "app-secret-value",
    "verify_token": "verify-token-value",
}


@pytest.fixture
async def org(db: Connection) -> dict[str, UUID]:
    owner = await make_user(db)
    org_id = await make_org(db, owner)
    return {
        "org": org_id,
        "admin": await member(db, org_id, "admin"),
        "agent": await member(db, org_id, "agent"),
    }


async def connect(
    client: httpx.AsyncClient,
    settings: Settings,
    org: dict[str, UUID],
    channel: str,
    setup: dict[str, Any],
    who: str = "admin",
) -> httpx.Response:
    return await client.post(
        URL,
        json={
            "organization_id": str(org["org"]),
            "channel": channel,
            "name": f"Our {channel}",
            "setup": setup,
        },
        headers=auth(settings, org[who]),
    )


async def test_connecting_whatsapp_stores_the_secrets_apart_and_answers_the_webhook_url(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    response = await connect(client, settings, org, "whatsapp", WHATSAPP_SETUP)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["external_id"] == "106540352242922"
    assert (
        body["webhook_url"]
        == f"https://connectgain.example/functions/v1/whatsapp-webhook/{body['id']}"
    )
    assert body["settings"]["waba_id"] == "102290129340398"
    for secret in ("EAAG-secret-token", "app-secret-value", "verify-token-value"):
        assert secret not in response.text
    stored = await db.fetchval(
        "select secrets from private.channel_credentials where channel_account_id = $1",
        UUID(body["id"]),
    )
    assert stored == {
        "access_token": "EAAG-secret-token",
        "app_secret": "app-secret-value",
        "verify_token": "verify-token-value",
    }

    listed = await client.get(
        URL, params={"organization_id": str(org["org"])}, headers=auth(settings, org["agent"])
    )
    assert [a["id"] for a in listed.json()["data"]] == [body["id"]]
    assert "EAAG-secret-token" not in listed.text


@respx.mock
async def test_connecting_telegram_checks_the_token_and_registers_the_webhook(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    respx.post(f"{BOT}/getMe").mock(
        return_value=httpx.Response(200, json=load("telegram", "get_me"))
    )
    hook = respx.post(f"{BOT}/setWebhook").mock(
        return_value=httpx.Response(200, json=load("telegram", "set_webhook"))
    )
    response = await connect(client, settings, org, "telegram", {"bot_token": TOKEN})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["external_id"] == "7123456789"
    assert body["settings"]["username"] == "connectgain_bot"
    registered = json.loads(hook.calls.last.request.content)
    assert registered["url"] == body["webhook_url"]
    assert registered["allowed_updates"] == ["message", "edited_message"]
    stored = await db.fetchval(
        "select secrets from private.channel_credentials where channel_account_id = $1",
        UUID(body["id"]),
    )
    assert stored["webhook_secret"] == registered["secret_token"]
    assert len(registered["secret_token"]) >= 32
    assert TOKEN not in response.text and registered["secret_token"] not in response.text


@respx.mock
async def test_a_bad_bot_token_is_a_422_and_nothing_is_stored(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    respx.post(f"{BOT}/getMe").mock(
        return_value=httpx.Response(401, json=load("telegram", "unauthorized"))
    )
    response = await connect(client, settings, org, "telegram", {"bot_token": TOKEN})
    assert response.status_code == 422
    assert "Unauthorized" in response.json()["error"]["message"]
    assert await db.fetchval("select count(*) from channel_accounts") == 0


@respx.mock
async def test_agents_cannot_connect_channels(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    route = respx.post(f"{BOT}/getMe")
    response = await connect(client, settings, org, "telegram", {"bot_token": TOKEN}, who="agent")
    assert response.status_code == 403
    assert not route.called


@pytest.mark.parametrize(
    ("channel", "setup", "field"),
    [
        ("whatsapp", {**WHATSAPP_SETUP, "phone_number_id": "abc"}, "phone_number_id"),
        ("whatsapp", {k: v for k, v in WHATSAPP_SETUP.items() if k != "app_secret"}, "app_secret"),
        ("telegram", {"bot_token": "nope"}, "bot_token"),
    ],
)
async def test_an_invalid_setup_is_a_422_naming_the_field(
    client: httpx.AsyncClient,
    settings: Settings,
    org: dict[str, UUID],
    channel: str,
    setup: dict[str, Any],
    field: str,
):
    response = await connect(client, settings, org, channel, setup)
    assert response.status_code == 422
    assert field in json.dumps(response.json()["error"]["details"])


async def test_an_unknown_channel_is_a_422(
    client: httpx.AsyncClient, settings: Settings, org: dict[str, UUID]
):
    response = await connect(client, settings, org, "pigeon", {})
    assert response.status_code == 422


@respx.mock
async def test_changing_and_disabling_an_account(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    respx.post(f"{BOT}/getMe").mock(
        return_value=httpx.Response(200, json=load("telegram", "get_me"))
    )
    respx.post(f"{BOT}/setWebhook").mock(
        return_value=httpx.Response(200, json=load("telegram", "set_webhook"))
    )
    unhook = respx.post(f"{BOT}/deleteWebhook").mock(
        return_value=httpx.Response(200, json=load("telegram", "delete_webhook"))
    )
    account = (await connect(client, settings, org, "telegram", {"bot_token": TOKEN})).json()

    by_agent = await client.patch(
        f"{URL}/{account['id']}", json={"name": "Mine"}, headers=auth(settings, org["agent"])
    )
    assert by_agent.status_code == 403
    renamed = await client.patch(
        f"{URL}/{account['id']}", json={"name": "Support bot"}, headers=auth(settings, org["admin"])
    )
    assert renamed.json()["name"] == "Support bot"

    disabled = await client.delete(f"{URL}/{account['id']}", headers=auth(settings, org["admin"]))
    assert disabled.status_code == 200
    assert disabled.json()["status"] == "disabled"
    assert unhook.called


async def test_channel_credentials_are_unreadable_through_the_api_roles(
    db: Connection, settings: Settings
):
    for role in ("anon", "authenticated"):
        assert (
            await db.fetchval(
                "select has_table_privilege($1, 'private.channel_credentials', 'SELECT')", role
            )
            is False
        )
        assert (
            await db.fetchval("select has_schema_privilege($1, 'private', 'USAGE')", role) is False
        )
