"""Connecting a Mailgun domain as an e-mail inbox through channel-accounts: the setup is
checked with Mailgun, the route and the event webhooks are registered (and removed on
disabling), and the keys are stored apart, never answered."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

import httpx
import pytest
import respx

from shared.db import Connection
from shared.settings import Settings
from tests.fixtures import load
from tests.support import auth, make_org, make_user, member

URL = "/functions/v1/channel-accounts"
API = "https://api.mailgun.net"
DOMAIN = "mg.northwind.example"
ROUTE = "6744a2d9e8f1c3b5a7d9e0f2"  # route_created
THEIRS = "https://hooks.northwind.example/mailgun/delivered"  # webhooks: the domain's own
SETUP = {
    "address": "Support@MG.Northwind.example",
    "domain": "MG.Northwind.example",
    "from_name": "Northwind Support",
    "api_key": "0f1e2d3c4b5a69788796a5b4c3d2e1f0-2b3c4d5e-6f7a8b9c",
    "webhook_signing_key": "8b3f1a6c2d9e4f7a0b5c8d1e2f3a4b5c-2b3c4d5e-6f7a8b9c",
}


@pytest.fixture
async def org(db: Connection) -> dict[str, UUID]:
    org_id = await make_org(db, await make_user(db))
    return {
        "org": org_id,
        "admin": await member(db, org_id, "admin"),
        "agent": await member(db, org_id, "agent"),
    }


async def connect(
    client: httpx.AsyncClient, settings: Settings, org: dict[str, UUID], setup: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        URL,
        json={
            "organization_id": str(org["org"]),
            "channel": "email",
            "name": "Support inbox",
            "setup": setup,
        },
        headers=auth(settings, org["admin"]),
    )


def form(call: Any) -> dict[str, list[str]]:
    return parse_qs(call.request.content.decode())


class Mailgun:
    """Mailgun's API for the account's setup, answering with its documented bodies."""

    def __init__(self, base: str = API, webhooks: dict[str, Any] | None = None) -> None:
        hooks = f"{base}/v3/domains/{DOMAIN}/webhooks"
        self.domain = respx.get(f"{base}/v4/domains/{DOMAIN}").mock(
            return_value=httpx.Response(200, json=load("email", "domain"))
        )
        self.route = respx.post(f"{base}/v3/routes").mock(
            return_value=httpx.Response(200, json=load("email", "route_created"))
        )
        self.unroute = respx.delete(f"{base}/v3/routes/{ROUTE}").mock(
            return_value=httpx.Response(200, json=load("email", "route_deleted"))
        )
        self.webhooks = respx.get(hooks).mock(
            return_value=httpx.Response(200, json=webhooks or load("email", "webhooks"))
        )
        self.create = respx.post(hooks).mock(
            return_value=httpx.Response(200, json=load("email", "webhook_created"))
        )
        self.update = respx.put(url__startswith=f"{hooks}/").mock(
            return_value=httpx.Response(200, json=load("email", "webhook_updated"))
        )
        self.delete = respx.delete(url__startswith=f"{hooks}/").mock(
            return_value=httpx.Response(200, json=load("email", "webhook_deleted"))
        )


@respx.mock
async def test_connecting_registers_the_route_and_webhooks_and_keeps_the_keys_apart(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    mailgun = Mailgun()
    response = await connect(client, settings, org, SETUP)
    assert response.status_code == 201, response.text
    body = response.json()
    hook = f"https://connectgain.example/functions/v1/email-webhook/{body['id']}"
    assert (body["external_id"], body["webhook_url"]) == ("support@mg.northwind.example", hook)
    assert body["settings"] == {
        "domain": DOMAIN,
        "region": "us",
        "from_name": "Northwind Support",
        "track_opens": True,
        "domain_state": "active",
        "route_id": ROUTE,
        "webhook_url": hook,
    }
    assert form(mailgun.route.calls.last) == {
        "priority": ["0"],
        "description": ["ConnectGain inbox support@mg.northwind.example"],
        "expression": ['match_recipient("^support@mg\\.northwind\\.example$")'],
        "action": [f'forward("{hook}")'],
    }
    # The domain's own delivered webhook is kept beside ours; the others are created.
    assert [c.request.url.path for c in mailgun.update.calls] == [
        f"/v3/domains/{DOMAIN}/webhooks/delivered"
    ]
    assert form(mailgun.update.calls.last) == {"url": [THEIRS, hook]}
    assert [form(c) for c in mailgun.create.calls] == [
        {"id": ["permanent_fail"], "url": [hook]},
        {"id": ["opened"], "url": [hook]},
    ]
    for call in (*mailgun.domain.calls, *mailgun.route.calls, *mailgun.create.calls):
        assert call.request.headers["authorization"].startswith("Basic ")

    for secret in (SETUP["api_key"], SETUP["webhook_signing_key"]):
        assert secret not in response.text
    stored = await db.fetchval(
        "select secrets from private.channel_credentials where channel_account_id = $1",
        UUID(body["id"]),
    )
    assert stored == {
        "api_key": SETUP["api_key"],
        "webhook_signing_key": SETUP["webhook_signing_key"],
    }
    listed = await client.get(
        URL, params={"organization_id": str(org["org"])}, headers=auth(settings, org["agent"])
    )
    assert [a["id"] for a in listed.json()["data"]] == [body["id"]]
    assert SETUP["api_key"] not in listed.text
    assert SETUP["webhook_signing_key"] not in listed.text


@respx.mock
async def test_an_eu_domain_is_set_up_through_mailguns_eu_api(
    client: httpx.AsyncClient, settings: Settings, org: dict[str, UUID]
):
    mailgun = Mailgun(base="https://api.eu.mailgun.net")
    response = await connect(client, settings, org, {**SETUP, "region": "eu"})
    assert response.status_code == 201, response.text
    assert response.json()["settings"]["region"] == "eu"
    assert mailgun.domain.called and mailgun.route.called and mailgun.create.called


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"address": "support at northwind"}, "address"),
        ({"domain": "mg_northwind.example"}, "domain"),
        ({"region": "asia"}, "region"),
        ({"from_name": "Support\r\nBcc: all@example.com"}, "from_name"),
        ({"api_key": ""}, "api_key"),
        ({"webhook_signing_key": None}, "webhook_signing_key"),
    ],
)
@respx.mock
async def test_an_invalid_setup_is_a_422_naming_the_field_and_asks_mailgun_nothing(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    org: dict[str, UUID],
    change: dict[str, Any],
    field: str,
):
    mailgun = Mailgun()
    setup = {k: v for k, v in {**SETUP, **change}.items() if v is not None}
    response = await connect(client, settings, org, setup)
    assert response.status_code == 422
    assert field in json.dumps(response.json()["error"]["details"])
    assert not mailgun.domain.called
    assert await db.fetchval("select count(*) from channel_accounts") == 0


@respx.mock
@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (httpx.Response(401, text="Forbidden"), "Mailgun refused the API key"),
        (
            httpx.Response(404, json=load("email", "error_domain_not_found")),
            f"Mailgun has no domain {DOMAIN}",
        ),
    ],
)
async def test_a_wrong_key_or_domain_is_a_422_and_nothing_is_registered_or_stored(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    org: dict[str, UUID],
    answer: httpx.Response,
    says: str,
):
    mailgun = Mailgun()
    mailgun.domain.mock(return_value=answer)
    response = await connect(client, settings, org, SETUP)
    assert response.status_code == 422
    assert says in response.json()["error"]["message"]
    assert not mailgun.route.called
    assert await db.fetchval("select count(*) from channel_accounts") == 0


@respx.mock
async def test_a_failure_after_the_route_was_made_removes_it_again(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    full = {"delivered": {"urls": [THEIRS, f"{THEIRS}/2", f"{THEIRS}/3"]}}
    mailgun = Mailgun(webhooks={"webhooks": full})
    response = await connect(client, settings, org, SETUP)
    assert response.status_code == 422
    assert "already has 3 URLs" in response.json()["error"]["message"]
    assert mailgun.route.called and mailgun.unroute.called
    assert not mailgun.update.called and not mailgun.create.called
    assert await db.fetchval("select count(*) from channel_accounts") == 0


@respx.mock
async def test_disabling_removes_our_route_and_only_our_webhook_urls(
    client: httpx.AsyncClient, settings: Settings, org: dict[str, UUID]
):
    mailgun = Mailgun()
    account = (await connect(client, settings, org, SETUP)).json()
    ours = account["webhook_url"]
    mailgun.webhooks.mock(
        return_value=httpx.Response(
            200,
            json={
                "webhooks": {
                    "delivered": {"urls": [THEIRS, ours]},
                    "permanent_fail": {"urls": [ours]},
                    "opened": {"urls": [ours]},
                    "clicked": {"urls": ["https://hooks.northwind.example/mailgun/clicked"]},
                }
            },
        )
    )
    mailgun.update.reset()
    response = await client.delete(f"{URL}/{account['id']}", headers=auth(settings, org["admin"]))
    assert response.status_code == 200
    assert response.json()["status"] == "disabled"
    assert mailgun.unroute.called
    assert [(c.request.url.path, form(c)) for c in mailgun.update.calls] == [
        (f"/v3/domains/{DOMAIN}/webhooks/delivered", {"url": [THEIRS]})
    ]
    assert sorted(c.request.url.path for c in mailgun.delete.calls) == [
        f"/v3/domains/{DOMAIN}/webhooks/opened",
        f"/v3/domains/{DOMAIN}/webhooks/permanent_fail",
    ]
