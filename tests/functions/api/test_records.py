"""/v1/companies, /v1/tasks, /v1/notes, /v1/tags and /v1/custom-fields."""

from __future__ import annotations

import httpx

from shared.db import Connection
from tests.functions.api.conftest import Tenant, error_of
from tests.support import make_contact, make_conversation
from tests.support_crm import define_field, make_company, make_note, make_tag


async def test_companies_normalize_domains_and_refuse_duplicates(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    response = await api.post(
        "/v1/companies",
        json={
            "name": "Acme",
            "domain": "https://www.ACME.example/about",
            "address": {"city": "Lisbon", "country": "PT"},
        },
        headers=tenant.headers(),
    )
    assert response.status_code == 201, response.text
    company = response.json()
    assert company["domain"] == "acme.example"
    assert company["address"] == {"city": "Lisbon", "country": "PT"}
    again = await api.post(
        "/v1/companies", json={"name": "Acme 2", "domain": "acme.example"}, headers=tenant.headers()
    )
    assert again.status_code == 409
    assert error_of(again)["details"][0]["field"] == "domain"
    bad = await api.post(
        "/v1/companies", json={"name": "X", "address": {"planet": "Mars"}}, headers=tenant.headers()
    )
    assert bad.status_code == 422
    renamed = await api.patch(
        f"/v1/companies/{company['id']}", json={"name": "Acme Inc"}, headers=tenant.headers()
    )
    assert (renamed.json()["name"], renamed.json()["domain"]) == ("Acme Inc", "acme.example")


async def test_deleting_a_company_keeps_its_contacts(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    company = await make_company(db, tenant.org)
    contact = await make_contact(db, tenant.org, company_id=company)
    deleted = await api.delete(f"/v1/companies/{company}", headers=tenant.headers())
    assert deleted.status_code == 204
    assert await db.fetchval("select company_id from contacts where id = $1", contact) is None


async def test_tasks_complete_and_reopen(api: httpx.AsyncClient, tenant: Tenant, db: Connection):
    contact = await make_contact(db, tenant.org)
    created = await api.post(
        "/v1/tasks",
        json={
            "title": "Call back",
            "due_at": "2026-06-01T10:00:00",
            "priority": "urgent",
            "contact_id": str(contact),
            "assignee_id": str(tenant.agent),
        },
        headers=tenant.headers(),
    )
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["due_at"] == "2026-06-01T10:00:00Z"  # no offset given: UTC
    assert task["created_by"] is None  # an API key is nobody
    done = await api.patch(
        f"/v1/tasks/{task['id']}", json={"status": "done"}, headers=tenant.headers()
    )
    assert done.json()["completed_at"] is not None
    reopened = await api.patch(
        f"/v1/tasks/{task['id']}", json={"status": "open", "due_at": None}, headers=tenant.headers()
    )
    assert (reopened.json()["completed_at"], reopened.json()["due_at"]) == (None, None)
    bad = await api.patch(
        f"/v1/tasks/{task['id']}", json={"priority": "asap"}, headers=tenant.headers()
    )
    assert bad.status_code == 422
    assert error_of(bad)["details"][0]["field"] == "body.priority"


async def test_notes_are_about_exactly_one_record(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    contact = await make_contact(db, tenant.org)
    conversation = await make_conversation(db, tenant.org, contact=contact)
    two = await api.post(
        "/v1/notes",
        json={"body": "x", "contact_id": str(contact), "conversation_id": str(conversation)},
        headers=tenant.headers(),
    )
    assert two.status_code == 422
    assert "exactly one of" in error_of(two)["details"][0]["message"]
    theirs = await make_contact(db, other.org)
    foreign = await api.post(
        "/v1/notes", json={"body": "x", "contact_id": str(theirs)}, headers=tenant.headers()
    )
    assert foreign.status_code == 422
    assert error_of(foreign)["message"] == "contact_id: no such contact in this organization"
    made = await api.post(
        "/v1/notes",
        json={"body": "Internal: VIP", "conversation_id": str(conversation)},
        headers=tenant.headers(),
    )
    assert made.status_code == 201
    assert made.json()["author_id"] is None
    # a member's note: the write key ranks as a manager, so it may edit it
    members_note = await make_note(db, tenant.org, contact_id=contact, author_id=tenant.agent)
    edited = await api.patch(
        f"/v1/notes/{members_note}", json={"body": "Edited"}, headers=tenant.headers()
    )
    assert edited.json()["body"] == "Edited"
    assert (
        await api.delete(f"/v1/notes/{members_note}", headers=tenant.headers())
    ).status_code == 204


async def test_tags_are_unique_whatever_their_case(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    made = await api.post(
        "/v1/tags", json={"name": " VIP ", "color": "#22C55E"}, headers=tenant.headers()
    )
    assert made.status_code == 201, made.text
    assert (made.json()["name"], made.json()["color"]) == ("VIP", "#22c55e")
    clash = await api.post("/v1/tags", json={"name": "vip"}, headers=tenant.headers())
    assert clash.status_code == 409
    assert error_of(clash)["details"][0]["field"] == "name"
    bad = await api.post("/v1/tags", json={"name": "x", "color": "green"}, headers=tenant.headers())
    assert bad.status_code == 422
    await make_tag(db, tenant.org, "alpha")
    listed = await api.get("/v1/tags", headers=tenant.headers())
    assert [t["name"] for t in listed.json()["data"]] == ["alpha", "VIP"]
    tag_id = made.json()["id"]
    renamed = await api.patch(
        f"/v1/tags/{tag_id}", json={"name": "V.I.P."}, headers=tenant.headers()
    )
    assert renamed.json()["name"] == "V.I.P."
    assert (await api.delete(f"/v1/tags/{tag_id}", headers=tenant.headers())).status_code == 204


async def test_conversations_can_be_tagged_but_not_written(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    conversation = await make_conversation(db, tenant.org)
    tagged = await api.post(
        f"/v1/conversations/{conversation}/tags",
        json={"tags": ["billing"]},
        headers=tenant.headers(),
    )
    assert tagged.status_code == 200, tagged.text
    assert [t["name"] for t in tagged.json()["tags"]] == ["billing"]
    assert tagged.json()["channel"] == "whatsapp"
    changed = await api.patch(
        f"/v1/conversations/{conversation}", json={"status": "resolved"}, headers=tenant.headers()
    )
    assert changed.status_code == 405


async def test_custom_field_definitions_are_listed(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    await define_field(db, tenant.org, "contact", "plan", "select", options=["free", "pro"])
    await define_field(db, tenant.org, "deal", "source", "text", required=True)
    every = await api.get("/v1/custom-fields", headers=tenant.headers())
    assert [(f["entity"], f["key"]) for f in every.json()] == [
        ("contact", "plan"),
        ("deal", "source"),
    ]
    deals = await api.get("/v1/custom-fields", params={"entity": "deal"}, headers=tenant.headers())
    assert [f["required"] for f in deals.json()] == [True]
    wrong = await api.get("/v1/custom-fields", params={"entity": "task"}, headers=tenant.headers())
    assert wrong.status_code == 422
