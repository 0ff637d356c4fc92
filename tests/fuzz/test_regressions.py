"""The causes of 5xx a fuzz run found, one deterministic test each.

Bad input to the API or a function is a 422 naming the field, and nothing is
written; a signed delivery is kept whatever it holds, its unreadable part failed
with the reason, the rest processed.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi import APIRouter

from shared.db import Connection
from shared.errors import Unprocessable
from shared.runtime import Runtime
from shared.web import function_app
from tests.channels.email.kit import EmailKit
from tests.channels.kit import counts, post
from tests.channels.messenger.kit import MessengerKit
from tests.channels.telegram.kit import TelegramKit
from tests.channels.whatsapp.kit import WhatsAppKit
from tests.fixtures import load
from tests.support import issue_key, make_org, make_user
from tests.support_crm import make_deal

API = "/functions/v1/api/v1"
DEEP = b"[" * 5000 + b"]" * 5000


@pytest.fixture
async def owner(db: Connection) -> UUID:
    return await make_user(db)


@pytest.fixture
async def org(db: Connection, owner: UUID) -> UUID:
    return await make_org(db, owner)


@pytest.fixture
async def key(runtime: Runtime, org: UUID, owner: UUID) -> dict[str, str]:
    token, _ = await issue_key(runtime, org, owner, ["read", "write"])
    return {"Authorization": f"Bearer {token}"}


def field_of(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    field: str = error["details"][0]["field"]
    return field


# ---- 1. NUL, anywhere -------------------------------------------------------------------------


async def test_nul_in_a_body_header_query_or_path_is_a_422_naming_it(
    client: httpx.AsyncClient, db: Connection, key: dict[str, str]
):
    before = await counts(db)
    nul_body = await client.post(f"{API}/contacts", content=b'{"name": "Ana\\u0000"}', headers=key)
    assert field_of(nul_body) == "body.name"
    in_list = await client.post(
        f"{API}/contacts",
        content=b'{"name": "Ana", "custom_fields": {"k": ["x\\u0000"]}}',
        headers=key,
    )
    assert field_of(in_list) == "body.custom_fields.k.0"
    header = await client.post(
        f"{API}/contacts", json={"name": "Ana"}, headers={**key, "Idempotency-Key": "k\x00"}
    )
    assert field_of(header) == "header.idempotency-key"
    query = await client.get(f"{API}/contacts?filter=%00", headers=key)
    assert field_of(query) == "query.filter"
    path = await client.get(f"{API}/contacts/%00", headers=key)
    assert field_of(path) == "path"
    assert await counts(db) == before
    assert await db.fetchval("select count(*) from contacts") == 0


async def test_a_signed_delivery_with_nul_is_kept_raw_and_the_message_beside_it_lands(
    client: httpx.AsyncClient, db: Connection, org: UUID
):
    kit = WhatsAppKit()
    account = await kit.create_account(db, org)
    payload = load("whatsapp", "batch")
    messages = payload["entry"][0]["changes"][0]["value"]["messages"]
    messages[1]["text"]["body"] = "Ol\x00á"
    response = await post(client, kit, account.id, kit._signed(account, payload))
    assert response.status_code == 200, response.text
    assert response.json() == {
        # three messages land; the one with NUL fails, as does the status of a message
        # we never sent (the fixture's)
        "received": 5, "duplicates": 0, "processed": 3, "ignored": 0, "failed": 2,
    }  # fmt: skip
    assert {r["provider_message_id"] for r in await db.fetch("select * from messages")} == {
        "wamid.BATCH-1",
        "wamid.BATCH-3",
        "wamid.BATCH-4",
    }
    kept = await db.fetchrow(
        "select provider_event_id, status, raw, payload, last_error,"
        " next_attempt_at = 'infinity' as final from inbound_events where raw is not null"
    )
    assert kept["provider_event_id"] == "message:wamid.BATCH-2"  # a redelivery is a duplicate
    assert kept["final"] and "NUL" in kept["last_error"]
    assert kept["payload"]["field"] == "payload.message.text.body"
    event = json.loads(kept["raw"])  # losslessly the event as the provider sent it
    assert event["payload"]["message"]["text"]["body"] == "Ol\x00á"
    again = await post(client, kit, account.id, kit._signed(account, payload))
    assert again.json()["duplicates"] == 5


# ---- 2. nesting thousands deep ----------------------------------------------------------------


async def test_json_nested_thousands_deep_is_refused_before_anything_parses_it(
    client: httpx.AsyncClient, db: Connection, org: UUID, key: dict[str, str]
):
    assert field_of(await client.post(f"{API}/contacts", content=DEEP, headers=key)) == "body"
    for kit in (TelegramKit(), MessengerKit(), EmailKit()):
        account = await kit.create_account(db, org)
        signed = (
            kit.event(account, {"nested": json.loads(b"[" * 900 + b"]" * 900)})
            if isinstance(kit, EmailKit)
            else kit.signed_raw(account, DEEP)
        )
        response = await post(client, kit, account.id, signed)
        assert field_of(response) == "body"
    assert await db.fetchval("select count(*) from inbound_events") == 0


async def test_a_filter_nested_thousands_deep_is_a_422(
    client: httpx.AsyncClient, key: dict[str, str]
):
    response = await client.get(f"{API}/contacts", params={"filter": "[" * 3000}, headers=key)
    assert field_of(response) == "filter"


# ---- 3. datetimes and numbers out of PostgreSQL's range ---------------------------------------


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:00"])
async def test_a_moment_outside_the_years_postgres_is_given_is_a_422(
    client: httpx.AsyncClient, db: Connection, key: dict[str, str], moment: str
):
    response = await client.post(f"{API}/tasks", json={"title": "t", "due_at": moment}, headers=key)
    assert field_of(response) == "body.due_at"
    assert await db.fetchval("select count(*) from tasks") == 0


async def test_a_number_past_postgres_range_is_a_422(
    client: httpx.AsyncClient, db: Connection, org: UUID, key: dict[str, str]
):
    deal = await make_deal(db, org)
    moved = await client.post(f"{API}/deals/{deal}/move", json={"index": 2**31}, headers=key)
    assert field_of(moved) == "body.index"
    huge = await client.post(
        f"{API}/contacts", content=b'{"name": "A", "custom_fields": {"n": 1e400}}', headers=key
    )
    assert field_of(huge) == "body.custom_fields.n"
    assert await db.fetchval("select count(*) from contacts") == 0


async def test_a_provider_time_past_year_9999_fails_its_event_not_the_delivery(
    client: httpx.AsyncClient, db: Connection, org: UUID
):
    kit = TelegramKit()
    account = await kit.create_account(db, org)
    payload = load("telegram", "text_message")
    payload["message"]["date"] = 10**20
    response = await post(
        client, kit, account.id, kit.signed_raw(account, json.dumps(payload).encode())
    )
    assert response.status_code == 200
    assert response.json()["failed"] == 1
    error = await db.fetchval("select last_error from inbound_events where status = 'failed'")
    assert "Overflow" in error or "out of range" in error


# ---- 4. NaN, Infinity and lone surrogates in answers ----------------------------------------


@pytest.mark.parametrize("body", [b'{"name": "A", "custom_fields": {"n": NaN}}',
                                  b'{"name": "A", "custom_fields": {"n": -Infinity}}',
                                  b'{"name": "A", "custom_fields": {"n": 1e999}}',
                                  b'{"name": "A\\ud800"}'])  # fmt: skip
async def test_nan_infinity_and_lone_surrogates_in_a_body_are_a_422(
    client: httpx.AsyncClient, db: Connection, key: dict[str, str], body: bytes
):
    assert field_of(await client.post(f"{API}/contacts", content=body, headers=key)).startswith(
        "body."
    )
    assert await db.fetchval("select count(*) from contacts") == 0


async def test_an_error_that_echoes_nan_or_a_surrogate_is_still_valid_json(runtime: Runtime):
    router = APIRouter()

    @router.get("/echo")
    async def echo() -> None:
        raise Unprocessable("bad \ud800", details={"value": float("nan"), "text": "x\udfff\x00"})

    app = function_app(router, name="echo", runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://echo") as c:
        response = await c.get("/echo")
    assert response.status_code == 422
    body = json.loads(response.content.decode("utf-8"))  # strict UTF-8, standard JSON
    assert body["error"]["details"] == {"value": "nan", "text": "x\ufffd\ufffd"}
    assert body["error"]["message"] == "bad \ufffd"


# ---- 5. non-object fields in a signed update --------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"message": "hello"},
        {"message": ["hello"]},
        {"message": {"message_id": 1, "date": 1731585600, "from": "x", "chat": {"id": 1}}},
        {"message": {"message_id": 1, "date": 1731585600, "from": {"id": 1}, "chat": 7}},
    ],
)
async def test_non_object_fields_in_a_signed_telegram_update_fail_that_update(
    client: httpx.AsyncClient, db: Connection, org: UUID, change: dict[str, Any]
):
    kit = TelegramKit()
    account = await kit.create_account(db, org)
    payload = {"update_id": 1, **copy.deepcopy(change)}
    response = await post(
        client, kit, account.id, kit.signed_raw(account, json.dumps(payload).encode())
    )
    assert response.status_code == 200
    assert response.json()["failed"] == 1
    kept = await db.fetchrow("select payload, last_error from inbound_events")
    assert kept["payload"] == payload
    assert "is not an object" in kept["last_error"]


async def test_a_meta_entry_of_the_wrong_shape_fails_alone(
    client: httpx.AsyncClient, db: Connection, org: UUID
):
    kit = MessengerKit()
    account = await kit.create_account(db, org)
    payload = load("messenger", "text_message")
    payload["entry"].append({"id": kit.external_id, "messaging": "not a list"})
    response = await post(client, kit, account.id, kit._signed(account, payload))
    assert response.json()["processed"] == 1 and response.json()["failed"] == 1
    assert await db.fetchval("select count(*) from messages") == 1


@pytest.mark.parametrize(
    ("sort", "value"),
    [
        ("name", "Ana\x00"),
        ("name", "Ana\ud800"),
        ("created_at", "9999-12-31T23:59:59-23:59"),
        ("created_at", "NaN"),
    ],
)
async def test_a_forged_cursor_past_what_postgres_takes_is_a_422(
    client: httpx.AsyncClient, key: dict[str, str], sort: str, value: str
):
    payload = {"s": sort, "v": value, "id": "00000000-0000-0000-0000-000000000000"}
    cursor = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    response = await client.get(
        f"{API}/contacts", params={"sort": sort, "cursor": cursor}, headers=key
    )
    assert field_of(response) == "cursor"
