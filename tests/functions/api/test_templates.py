"""/v1/whatsapp-templates and /v1/text-templates: a sync follows Graph's pages, a
submission stores what Meta accepted, Graph's refusals are 502s naming them, bad
input is a 4xx that saves nothing and calls nobody, write keys (managers) write."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest
import respx

from shared.db import Connection
from shared.runtime import Runtime
from tests.channels.kit import Account, insert_account
from tests.fixtures import load
from tests.functions.api.conftest import Tenant, error_of
from tests.support import as_, principal

WABA = "102290129340398"
TEMPLATES = f"https://graph.facebook.com/v21.0/{WABA}/message_templates"
SECRETS = {"access_token": "EAAG-test", "app_secret": "wa-app-secret", "verify_token": "verify-me"}


async def whatsapp(db: Connection, tenant: Tenant) -> Account:
    return await insert_account(
        db, tenant.org, "whatsapp", "106540352242922", SECRETS, {"waba_id": WABA}
    )


def pages(*bodies: Any) -> list[httpx.Response]:
    return [httpx.Response(200, json=body) for body in bodies]


@respx.mock
async def test_a_sync_follows_graphs_pages_and_stores_every_template(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    account = await whatsapp(db, tenant)
    route = respx.get(url__startswith=TEMPLATES).mock(
        side_effect=pages(
            load("whatsapp", "templates_page_1"), load("whatsapp", "templates_page_2")
        )
    )
    body = {"channel_account_id": str(account.id)}
    refused = await api.post(
        "/v1/whatsapp-templates/sync", json=body, headers=tenant.headers(read_only=True)
    )
    assert refused.status_code == 403
    stranger = await api.post("/v1/whatsapp-templates/sync", json=body, headers=other.headers())
    assert stranger.status_code == 404
    assert not route.called

    synced = await api.post("/v1/whatsapp-templates/sync", json=body, headers=tenant.headers())
    assert synced.status_code == 200, synced.text
    assert synced.json() == {"synced": 4, "removed": 0}
    first, second = route.calls
    assert first.request.headers["authorization"] == "Bearer EAAG-test"
    assert first.request.url.params["limit"] == "100"
    assert second.request.url.params["after"] == "MjQZD"  # paging.next, as Graph gave it

    listed = await api.get("/v1/whatsapp-templates", headers=tenant.headers(read_only=True))
    by_name = {t["name"]: t for t in listed.json()}
    assert {n: (t["status"], t["parameter_format"]) for n, t in by_name.items()} == {
        "invoice_ready": ("PENDING", "POSITIONAL"),
        "order_update": ("APPROVED", "POSITIONAL"),
        "spring_sale": ("REJECTED", "POSITIONAL"),
        "welcome_back": ("APPROVED", "NAMED"),
    }
    assert by_name["spring_sale"]["status_reason"] == "PROMOTIONAL"
    assert by_name["order_update"]["components"][0] == {
        "type": "HEADER",
        "format": "IMAGE",
        "example": {"header_handle": ["4::aW1hZ2UvanBlZw==:ARZ_example_handle"]},
    }
    assert (await api.get("/v1/whatsapp-templates", headers=other.headers())).json() == []

    # Meta no longer lists three of them: they are gone here too
    last = load("whatsapp", "templates_page_2")
    last["data"] = last["data"][:1]
    route.side_effect = pages(last)
    again = await api.post("/v1/whatsapp-templates/sync", json=body, headers=tenant.headers())
    assert again.json() == {"synced": 1, "removed": 3}


@respx.mock
async def test_a_graph_refusal_is_a_502_naming_it_and_changes_nothing(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    account = await whatsapp(db, tenant)
    respx.get(url__startswith=TEMPLATES).mock(
        return_value=httpx.Response(401, json=load("whatsapp", "error_invalid_token"))
    )
    response = await api.post(
        "/v1/whatsapp-templates/sync",
        json={"channel_account_id": str(account.id)},
        headers=tenant.headers(),
    )
    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "provider_rejected"
    assert "Error validating access token" in error["message"]
    assert "EAAG-test" not in response.text
    assert await db.fetchval("select count(*) from whatsapp_templates") == 0


@respx.mock
async def test_graph_out_of_reach_is_a_503_and_changes_nothing(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    account = await whatsapp(db, tenant)
    respx.get(url__startswith=TEMPLATES).mock(side_effect=httpx.ConnectError("down"))
    response = await api.post(
        "/v1/whatsapp-templates/sync",
        json={"channel_account_id": str(account.id)},
        headers=tenant.headers(),
    )
    assert response.status_code == 503
    assert error_of(response)["code"] == "provider_unavailable"
    assert await db.fetchval("select count(*) from whatsapp_templates") == 0


@respx.mock
async def test_a_submitted_template_is_stored_pending_as_meta_answered(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    account = await whatsapp(db, tenant)
    route = respx.post(TEMPLATES).mock(
        return_value=httpx.Response(200, json=load("whatsapp", "template_created_response"))
    )
    template = {
        "name": "seasonal_promotion",
        "language": "en_US",
        "category": "MARKETING",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Our {{1}} is on!"},
            {"type": "BODY", "text": "Shop now through {{1}} and use code {{2}}."},
        ],
    }
    body = {"channel_account_id": str(account.id), "template": template}
    created = await api.post("/v1/whatsapp-templates", json=body, headers=tenant.headers())
    assert created.status_code == 201, created.text
    row = created.json()
    assert (row["provider_template_id"], row["status"], row["category"]) == (
        "572279198452421",
        "PENDING",
        "MARKETING",
    )
    sent = json.loads(route.calls.last.request.content)
    assert sent == template | {"parameter_format": "POSITIONAL"}

    # Meta refuses one: nothing is stored
    route.mock(
        return_value=httpx.Response(400, json=load("whatsapp", "error_template_name_exists"))
    )
    refused = await api.post(
        "/v1/whatsapp-templates",
        json=body | {"template": template | {"name": "another_one"}},
        headers=tenant.headers(),
    )
    assert refused.status_code == 502
    assert "Invalid parameter" in error_of(refused)["message"]
    assert await db.fetchval("select array_agg(name) from whatsapp_templates") == [
        "seasonal_promotion"
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "Has Spaces"}, "name"),
        ({"category": "GOSSIP"}, "category"),
        ({"components": []}, "components"),
    ],
)
@respx.mock
async def test_a_bad_submission_is_a_422_naming_the_field_and_calls_nobody(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection, change: dict[str, Any], field: str
):
    account = await whatsapp(db, tenant)
    route = respx.post(TEMPLATES)
    template = {"name": "ok", "language": "en", "category": "UTILITY"} | {
        "components": [{"type": "BODY", "text": "Hi"}]
    }
    response = await api.post(
        "/v1/whatsapp-templates",
        json={"channel_account_id": str(account.id), "template": template | change},
        headers=tenant.headers(),
    )
    assert response.status_code == 422
    assert field in json.dumps(error_of(response))
    assert not route.called
    assert await db.fetchval("select count(*) from whatsapp_templates") == 0


async def test_text_templates_are_checked_on_save_and_rendered_in_the_sandbox(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, runtime: Runtime
):
    bad = await api.post(
        "/v1/text-templates",
        json={"name": "broken", "body": "Hi {{ contact.name "},
        headers=tenant.headers(),
    )
    assert bad.status_code == 422
    assert error_of(bad)["message"].startswith("body: template syntax error on line 1")
    read_only = await api.post(
        "/v1/text-templates",
        json={"name": "x", "body": "x"},
        headers=tenant.headers(read_only=True),
    )
    assert read_only.status_code == 403
    created = await api.post(
        "/v1/text-templates",
        json={
            "name": "greeting",
            "body": 'Hi {{ contact.name | default("there") }}, {{ agent.name }} here',
        },
        headers=tenant.headers(),
    )
    assert created.status_code == 201, created.text
    template_id = created.json()["id"]
    duplicate = await api.post(
        "/v1/text-templates", json={"name": "greeting", "body": "x"}, headers=tenant.headers()
    )
    assert duplicate.status_code == 409

    url = f"/v1/text-templates/{template_id}/render"
    rendered = await api.post(url, json={"agent": {"name": "Sam"}}, headers=tenant.headers())
    assert rendered.json() == {"text": "Hi there, Sam here"}
    missing = await api.post(url, json={}, headers=tenant.headers())
    assert missing.status_code == 422
    assert error_of(missing)["code"] == "template_variable_missing"
    unsafe = await api.patch(
        f"/v1/text-templates/{template_id}",
        json={"body": "{{ agent.name.__class__.__mro__ }}"},
        headers=tenant.headers(),
    )
    assert unsafe.status_code == 200  # valid syntax; refused when rendered
    refused = await api.post(url, json={"agent": {"name": "Sam"}}, headers=tenant.headers())
    assert (refused.status_code, error_of(refused)["code"]) == (422, "template_refused")

    assert (
        await api.get(f"/v1/text-templates/{template_id}", headers=other.headers())
    ).status_code == 404
    assert (await api.post(url, json={}, headers=other.headers())).status_code == 404
    # an agent reads them and cannot write them
    agent = principal(tenant.agent)
    assert [r["name"] for r in await as_(runtime, agent, "select name from text_templates")] == [
        "greeting"
    ]
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_(
            runtime,
            agent,
            "insert into text_templates (organization_id, name, body) values ($1, 'a', 'b')",
            tenant.org,
        )
    gone = await api.delete(f"/v1/text-templates/{template_id}", headers=tenant.headers())
    assert gone.status_code == 204
    again = await api.delete(f"/v1/text-templates/{template_id}", headers=tenant.headers())
    assert again.status_code == 404
