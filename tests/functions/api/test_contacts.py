"""/v1/contacts: create, read, update, delete, tags, validation, isolation, idempotency."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
import pytest

from shared.db import Connection
from tests.functions.api.conftest import Tenant, error_of
from tests.support import make_contact
from tests.support_crm import define_field, make_company


async def create(api: httpx.AsyncClient, tenant: Tenant, **body: object) -> httpx.Response:
    return await api.post("/v1/contacts", json=body, headers=tenant.headers())


async def test_create_normalizes_and_answers_the_whole_contact(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    company = await make_company(db, tenant.org)
    response = await create(
        api,
        tenant,
        name="Ana Lima",
        email="Ana@Example.com",
        phone="+351 912 345 678",
        company_id=str(company),
        opted_out_channels=["sms", "sms", "email"],
        tags=["VIP", "lead"],
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == "ana@example.com"
    assert body["phone"] == "+351912345678"
    assert body["company_id"] == str(company)
    assert body["source"] == "api"
    assert body["opted_out_channels"] == ["email", "sms"]
    assert [t["name"] for t in body["tags"]] == ["lead", "VIP"]
    assert body["organization_id"] == str(tenant.org)
    fetched = await api.get(f"/v1/contacts/{body['id']}", headers=tenant.headers())
    assert fetched.json() == body


async def test_custom_fields_are_checked_by_the_database_rules(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    await define_field(db, tenant.org, "contact", "plan", "select", options=["free", "pro"])
    await define_field(db, tenant.org, "contact", "seats", "number", required=True)
    missing = await create(api, tenant, name="Ana", custom_fields={"plan": "pro"})
    assert missing.status_code == 422
    assert error_of(missing)["message"] == "custom_fields.seats: is required"
    wrong = await create(api, tenant, custom_fields={"plan": "gold", "seats": "3"})
    assert wrong.status_code == 422
    assert "custom_fields.plan: must be one of" in error_of(wrong)["message"]
    assert "custom_fields.seats: must be a number" in error_of(wrong)["message"]
    assert await db.fetchval("select count(*) from contacts") == 0

    made = await create(api, tenant, custom_fields={"plan": "pro", "seats": 3})
    contact = made.json()["id"]
    merged = await api.patch(
        f"/v1/contacts/{contact}",
        json={"custom_fields": {"plan": None}},
        headers=tenant.headers(),
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["custom_fields"] == {"seats": 3}  # merged; null removed plan
    cleared = await api.patch(
        f"/v1/contacts/{contact}", json={"custom_fields": {"seats": None}}, headers=tenant.headers()
    )
    assert cleared.status_code == 422  # a required value cannot be removed


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "body.email"),
        ({"phone": "12"}, "body.phone"),
        ({"opted_out_channels": ["pigeon"]}, "body.opted_out_channels.0"),
        ({"nickname": "Bob"}, "body.nickname"),
        ({"avatar_url": "ftp://x"}, "body.avatar_url"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection, body: dict[str, Any], field: str
):
    response = await create(api, tenant, **body)
    assert response.status_code == 422
    assert field in [d["field"] for d in error_of(response)["details"]]
    assert await db.fetchval("select count(*) from contacts") == 0


async def test_duplicates_and_bad_references_name_the_field(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    await create(api, tenant, email="ana@example.com")
    duplicate = await create(api, tenant, email="ANA@example.com")
    assert duplicate.status_code == 409
    assert error_of(duplicate)["details"] == [
        {"field": "email", "message": "email: another contact already has this email"}
    ]
    foreign_company = await make_company(db, other.org)
    foreign = await create(api, tenant, company_id=str(foreign_company))
    assert foreign.status_code == 422
    assert error_of(foreign)["message"] == "company_id: no such company in this organization"
    stranger = await create(api, tenant, assignee_id=str(other.owner))
    assert stranger.status_code == 422
    assert error_of(stranger)["message"] == "assignee_id: not a member of this organization"
    assigned = await create(api, tenant, assignee_id=str(tenant.agent))
    assert assigned.status_code == 201


async def test_another_organizations_contact_is_not_found(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    theirs = await make_contact(db, other.org, name="Theirs")
    for method, body in (("GET", None), ("PATCH", {"name": "Mine"}), ("DELETE", None)):
        response = await api.request(
            method, f"/v1/contacts/{theirs}", json=body, headers=tenant.headers()
        )
        assert response.status_code == 404, method
    tagged = await api.post(
        f"/v1/contacts/{theirs}/tags", json={"tags": ["x"]}, headers=tenant.headers()
    )
    assert tagged.status_code == 404
    assert await db.fetchval("select name from contacts where id = $1", theirs) == "Theirs"
    assert await db.fetchval("select count(*) from tags") == 0


async def test_tags_are_replaced_added_and_removed(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    contact = (await create(api, tenant, tags=["VIP"])).json()["id"]
    added = await api.post(
        f"/v1/contacts/{contact}/tags", json={"tags": ["vip", "Lead"]}, headers=tenant.headers()
    )
    assert [t["name"] for t in added.json()["tags"]] == ["Lead", "VIP"]  # "vip" is VIP
    removed = await api.delete(f"/v1/contacts/{contact}/tags/lead", headers=tenant.headers())
    assert [t["name"] for t in removed.json()["tags"]] == ["VIP"]
    replaced = await api.patch(
        f"/v1/contacts/{contact}", json={"tags": ["Churned"]}, headers=tenant.headers()
    )
    assert [t["name"] for t in replaced.json()["tags"]] == ["Churned"]
    unknown_id = await api.patch(
        f"/v1/contacts/{contact}",
        json={"tags": ["00000000-0000-4000-8000-000000000000"]},
        headers=tenant.headers(),
    )
    assert unknown_id.status_code == 422
    assert error_of(unknown_id)["details"][0]["field"] == "tags"
    assert await db.fetchval("select count(*) from tags") == 3


async def test_an_idempotent_retry_creates_once_and_replays_the_answer(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    headers = {**tenant.headers(), "Idempotency-Key": "order-42"}
    first = await api.post("/v1/contacts", json={"name": "Ana"}, headers=headers)
    again = await api.post("/v1/contacts", json={"name": "Ana"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await db.fetchval("select count(*) from contacts") == 1
    reused = await api.post("/v1/contacts", json={"name": "Bob"}, headers=headers)
    assert reused.status_code == 422


async def test_delete_needs_the_write_scope_and_removes(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    contact = await make_contact(db, tenant.org)
    read_only = await api.delete(f"/v1/contacts/{contact}", headers=tenant.headers(read_only=True))
    assert read_only.status_code == 403
    deleted = await api.delete(f"/v1/contacts/{contact}", headers=tenant.headers())
    assert deleted.status_code == 204
    assert await db.fetchval("select count(*) from contacts where id = $1", contact) == 0
    gone = await api.get(f"/v1/contacts/{contact}", headers=tenant.headers())
    assert gone.status_code == 404


async def test_contact_events_reach_the_outbox(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    contact = UUID((await create(api, tenant, name="Ana")).json()["id"])
    await api.patch(f"/v1/contacts/{contact}", json={"name": "Ana Lima"}, headers=tenant.headers())
    kinds = await db.fetch(
        "select event_type from outbox_events where aggregate_id = $1 order by id", contact
    )
    assert [k["event_type"] for k in kinds] == ["contact.created", "contact.updated"]
