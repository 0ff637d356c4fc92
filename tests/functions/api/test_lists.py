"""List endpoints: filter, sort, limit and cursors that stay stable while rows are added."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest

from shared.db import Connection
from tests.functions.api.conftest import Tenant, error_of
from tests.support import make_contact, make_conversation, make_message
from tests.support_crm import (
    define_field,
    make_company,
    make_deal,
    make_note,
    make_tag,
    make_task,
    tag,
)

T0 = datetime(2026, 5, 1, 9, tzinfo=UTC)


async def pages(
    api: httpx.AsyncClient, tenant: Tenant, path: str, **params: Any
) -> list[dict[str, Any]]:
    """Every row of a list, following next_cursor."""
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await api.get(path, params=query, headers=tenant.headers())
        assert response.status_code == 200, response.text
        body = response.json()
        rows += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return rows


def flt(tree: Any) -> str:
    return json.dumps(tree)


async def test_filter_by_tag_and_custom_field_sorted_newest_first(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    await define_field(db, tenant.org, "contact", "plan", "select", options=["free", "pro"])
    vip = await make_tag(db, tenant.org, "VIP")
    wanted = []
    for i in range(6):
        contact = await make_contact(
            db,
            tenant.org,
            created_at=T0 + timedelta(minutes=i),
            custom_fields={"plan": "pro" if i % 2 else "free"},
        )
        if i != 3:
            await tag(db, tenant.org, "contact_tags", "contact_id", contact, vip)
        if i % 2 and i != 3:
            wanted.append(str(contact))
    await make_contact(db, other.org, custom_fields={})  # invisible
    tree = {
        "and": [
            {"field": "tags", "op": "has_tag", "value": "vip"},
            {"field": "custom_fields.plan", "op": "eq", "value": "pro"},
        ]
    }
    rows = await pages(api, tenant, "/v1/contacts", filter=flt(tree), limit=1)
    assert [r["id"] for r in rows] == wanted[::-1]


async def test_cursors_are_stable_while_rows_are_inserted(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    first = [
        str(await make_contact(db, tenant.org, created_at=T0 + timedelta(minutes=i)))
        for i in range(5)
    ]
    page = (await api.get("/v1/contacts", params={"limit": 2}, headers=tenant.headers())).json()
    # newer rows arrive (and one with the very same created_at as the last one seen)
    await make_contact(db, tenant.org, created_at=T0 + timedelta(minutes=10))
    await make_contact(db, tenant.org, created_at=T0 + timedelta(minutes=3))
    rest = await pages(api, tenant, "/v1/contacts", limit=2, cursor=page["next_cursor"])
    seen = [r["id"] for r in page["data"]] + [r["id"] for r in rest]
    assert seen[:2] == first[::-1][:2]
    assert len(seen) == len(set(seen))  # nothing twice
    assert set(first) <= set(seen)  # nothing skipped


@pytest.mark.parametrize("sort", ["name", "-name", "last_activity_at", "-updated_at"])
async def test_every_sort_pages_through_every_row_once(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection, sort: str
):
    names = ["bea", None, "ana", "carl", None, "ana"]
    for i, name in enumerate(names):
        await make_contact(
            db,
            tenant.org,
            name=name,
            last_activity_at=None if i % 3 == 0 else T0 + timedelta(hours=i % 2),
        )
    rows = await pages(api, tenant, "/v1/contacts", sort=sort, limit=2)
    assert len({r["id"] for r in rows}) == len(names)
    key = sort.lstrip("-")
    values = [r[key] for r in rows]
    present = [v for v in values if v is not None]
    assert present == sorted(present, reverse=sort.startswith("-"))
    assert values == present + [None] * (len(values) - len(present))  # missing values last


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 201}, "query.limit"),
        ({"limit": 0}, "query.limit"),
        ({"filter": "{not json"}, "filter"),
        ({"filter": flt({"field": "nope", "op": "eq", "value": 1})}, "filter.field"),
        ({"filter": flt({"field": "created_at", "op": "gt", "value": 5})}, "filter.value"),
        ({"sort": "email"}, "sort"),
        ({"cursor": "garbage"}, "cursor"),
    ],
)
async def test_bad_list_parameters_are_a_422_naming_them(
    api: httpx.AsyncClient, tenant: Tenant, params: dict[str, Any], field: str
):
    response = await api.get("/v1/contacts", params=params, headers=tenant.headers())
    assert response.status_code == 422
    assert field in [d["field"] for d in error_of(response)["details"]]


async def test_a_cursor_only_continues_the_sort_it_came_from(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    for _ in range(3):
        await make_contact(db, tenant.org)
    page = (await api.get("/v1/contacts", params={"limit": 1}, headers=tenant.headers())).json()
    response = await api.get(
        "/v1/contacts",
        params={"cursor": page["next_cursor"], "sort": "name"},
        headers=tenant.headers(),
    )
    assert response.status_code == 422
    assert "made for sort '-created_at'" in error_of(response)["message"]


async def test_every_list_endpoint_filters_and_pages(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    org = tenant.org
    company = await make_company(db, org, name="Acme", domain="acme.example")
    await make_company(db, org, name="Globex")
    contact = await make_contact(db, org, name="Ana", company_id=company)
    deal = await make_deal(db, org, contact_id=contact, value=1500)
    await make_deal(db, org, value=10)
    await make_task(db, org, title="Call Ana", contact_id=contact, due_at=T0)
    await make_task(db, org, title="Write proposal", priority="high")
    await make_note(db, org, contact_id=contact, body="Met at the fair")
    await make_note(db, org, deal_id=deal, body="Discount asked")
    await make_tag(db, org, "VIP")
    conversation = await make_conversation(db, org, contact=contact)
    await make_conversation(db, org)
    for _ in range(3):
        await make_message(db, org, conversation)
    for theirs in (other.org,):  # the other organization has rows of every kind too
        await make_deal(db, theirs, contact_id=await make_contact(db, theirs, name="Ana"))
        await make_conversation(db, theirs)

    cases: list[tuple[str, Any, int]] = [
        ("/v1/companies", {"field": "domain", "op": "eq", "value": "ACME.example"}, 1),
        ("/v1/contacts", {"field": "company_id", "op": "eq", "value": str(company)}, 1),
        ("/v1/deals", {"field": "value", "op": "gte", "value": 1000}, 1),
        ("/v1/deals", {"field": "status", "op": "eq", "value": "open"}, 2),
        ("/v1/tasks", {"field": "due_at", "op": "is_set"}, 1),
        ("/v1/tasks", {"field": "priority", "op": "in", "value": ["high", "urgent"]}, 1),
        ("/v1/notes", {"field": "contact_id", "op": "eq", "value": str(contact)}, 1),
        ("/v1/notes", {"field": "body", "op": "contains", "value": "DISCOUNT"}, 1),
        ("/v1/tags", {"field": "name", "op": "starts_with", "value": "v"}, 1),
        ("/v1/pipelines", {"field": "is_default", "op": "eq", "value": True}, 1),
        ("/v1/conversations", {"field": "channel", "op": "eq", "value": "whatsapp"}, 2),
        ("/v1/conversations", {"field": "contact_id", "op": "eq", "value": str(contact)}, 1),
        (
            f"/v1/conversations/{conversation}/messages",
            {"field": "direction", "op": "eq", "value": "inbound"},
            3,
        ),
    ]
    for path, tree, count in cases:
        rows = await pages(api, tenant, path, filter=flt(tree), limit=1)
        assert len(rows) == count, (path, tree, rows)
        assert all(r["organization_id"] == str(org) for r in rows)


async def test_messages_of_another_organizations_conversation_are_not_found(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    theirs = await make_conversation(db, other.org)
    await make_message(db, other.org, theirs)
    response = await api.get(f"/v1/conversations/{theirs}/messages", headers=tenant.headers())
    assert response.status_code == 404
    listed = await pages(api, tenant, "/v1/conversations")
    assert listed == []
    assert UUID(str(theirs))
