"""GET /v1/messages/search and /v1/contacts/search: substring search, newest first,
one organization's rows only, paginated with cursors; bad input is a 422."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest

from shared.db import Connection
from tests.functions.api.conftest import Tenant, error_of
from tests.support import make_contact, make_conversation

T0 = datetime(2026, 7, 1, 9, tzinfo=UTC)


async def message(db: Connection, conversation: UUID, body: str, minutes: int) -> UUID:
    found: UUID = await db.fetchval(
        "insert into public.messages (organization_id, conversation_id, channel_account_id,"
        " direction, sender_type, body, status, created_at)"
        " select organization_id, id, channel_account_id, 'inbound', 'contact', $2, 'received',"
        " $3 from public.conversations where id = $1 returning id",
        conversation,
        body,
        T0 + timedelta(minutes=minutes),
    )
    return found


async def search(
    api: httpx.AsyncClient, tenant: Tenant, what: str, **params: Any
) -> list[dict[str, Any]]:
    """Every page, following next_cursor."""
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await api.get(f"/v1/{what}/search", params=query, headers=tenant.headers())
        assert response.status_code == 200, response.text
        rows += response.json()["data"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return rows


async def test_messages_search_finds_the_keys_organization_newest_first_page_by_page(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    mine = await make_conversation(db, tenant.org)
    wanted = [
        await message(db, mine, f"I would like a Refund for order {i}", minutes=i) for i in range(5)
    ]
    await message(db, mine, "Where is my parcel?", minutes=10)
    await message(db, await make_conversation(db, other.org), "refund please", minutes=20)
    rows = await search(api, tenant, "messages", q="refund", limit=2)
    assert [UUID(r["id"]) for r in rows] == wanted[::-1]
    assert {r["conversation_id"] for r in rows} == {str(mine)}
    theirs = await search(api, other, "messages", q="REFUND")
    assert [r["body"] for r in theirs] == ["refund please"]


async def test_messages_search_takes_percent_and_underscore_literally(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    conversation = await make_conversation(db, tenant.org)
    exact = await message(db, conversation, "100% sure", minutes=1)
    await message(db, conversation, "1000 sure", minutes=2)
    assert [UUID(r["id"]) for r in await search(api, tenant, "messages", q="00% s")] == [exact]
    assert await search(api, tenant, "messages", q="1_0") == []


async def test_contacts_search_matches_name_email_or_phone_of_the_keys_organization(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    ada = await make_contact(db, tenant.org, name="Ada Okonkwo", created_at=T0)
    bo = await make_contact(
        db, tenant.org, name="Bo", email="bo@okonkwo.example", created_at=T0 + timedelta(hours=1)
    )
    cy = await make_contact(db, tenant.org, name="Cy", phone="+15557770001")
    await make_contact(db, other.org, name="Dee Okonkwo")
    rows = await search(api, tenant, "contacts", q="okonkwo", limit=1)
    assert [UUID(r["id"]) for r in rows] == [bo, ada]
    assert rows[0]["tags"] == []
    assert [UUID(r["id"]) for r in await search(api, tenant, "contacts", q="777000")] == [cy]


@pytest.mark.parametrize("what", ["messages", "contacts"])
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": "ab"}, "q"),
        ({"q": "  ab  "}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "refund", "limit": "0"}, "limit"),
        ({"q": "refund", "limit": "201"}, "limit"),
        ({"q": "refund", "cursor": "not-a-cursor"}, "cursor"),
    ],
)
async def test_bad_search_input_is_a_422_naming_the_field(
    what: str, params: dict[str, str], field: str, api: httpx.AsyncClient, tenant: Tenant
):
    response = await api.get(f"/v1/{what}/search", params=params, headers=tenant.headers())
    assert response.status_code == 422, response.text
    assert field in str(error_of(response))


async def test_search_needs_a_key_and_a_read_key_is_enough(api: httpx.AsyncClient, tenant: Tenant):
    assert (await api.get("/v1/messages/search", params={"q": "refund"})).status_code == 401
    response = await api.get(
        "/v1/contacts/search", params={"q": "refund"}, headers=tenant.headers(read_only=True)
    )
    assert response.status_code == 200
    assert response.json() == {"data": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("q", "status"),
    [
        ("ref%00und", 422),  # a NUL: PostgreSQL text cannot hold it
        ("ref%ED%A0%80und", 200),  # not UTF-8: read with replacement characters, no match
        ("ref%FFund", 200),
    ],
)
async def test_a_query_postgresql_cannot_take_is_refused_or_read_safely(
    q: str, status: int, api: httpx.AsyncClient, tenant: Tenant
):
    response = await api.get(f"/v1/messages/search?q={q}", headers=tenant.headers())
    assert response.status_code == status, response.text
