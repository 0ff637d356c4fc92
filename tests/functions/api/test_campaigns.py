"""/v1/campaigns: create → start (the audience snapshotted) → pause / resume / cancel,
the recipients' log; read keys only read, another organization sees nothing, and
bad input is a 422 naming the problem with nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio

from shared.db import Connection
from shared.runtime import Runtime
from tests.functions.api.conftest import Tenant, _tenant, api_client, error_of
from tests.support import make_channel_account, make_contact, module_runtime_fixtures

VIP = {"field": "name", "op": "starts_with", "value": "VIP"}
# One database, two organizations and their accounts for the module: each test adds
# only campaigns it checks by name or id.
pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.xdist_group("test_api_campaigns"),
]
runtime, db = module_runtime_fixtures()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tenant(db: Connection, runtime: Runtime) -> Tenant:
    return await _tenant(db, runtime)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def other(db: Connection, runtime: Runtime) -> Tenant:
    return await _tenant(db, runtime)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def made(db: Connection, tenant: Tenant) -> dict[str, UUID]:
    return await accounts(db, tenant)


async def accounts(db: Connection, tenant: Tenant) -> dict[str, UUID]:
    whatsapp = await make_channel_account(db, tenant.org, channel="whatsapp")
    await db.execute(
        "insert into whatsapp_templates (organization_id, channel_account_id, name, language,"
        " category, status, components) values ($1, $2, 'spring_sale', 'en', 'MARKETING',"
        " 'APPROVED', $3)",
        tenant.org,
        whatsapp,
        [{"type": "BODY", "text": "Hi {{1}}, spring sale!", "example": {"body_text": [["Ann"]]}}],
    )
    await make_contact(db, tenant.org, name="VIP Ann", phone="+4915112345678")
    await make_contact(db, tenant.org, name="VIP Bob")  # no address
    await make_contact(db, tenant.org, name="Carl", phone="+4915112345679")
    return {
        "whatsapp": whatsapp,
        "telegram": await make_channel_account(db, tenant.org, channel="telegram"),
    }


async def test_a_campaign_from_draft_to_cancelled(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, made: dict[str, UUID]
) -> None:
    account = made["whatsapp"]
    body = {
        "channel_account_id": str(account),
        "name": "Spring",
        "template": {"name": "spring_sale", "language": "en", "body": ["Ann"]},
        "audience": VIP,
    }
    readonly = await api.post("/v1/campaigns", json=body, headers=tenant.headers(read_only=True))
    assert readonly.status_code == 403
    created = await api.post("/v1/campaigns", json=body, headers=tenant.headers())
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert campaign["status"] == "draft" and campaign["progress"]["queued"] == 0
    url = f"/v1/campaigns/{campaign['id']}"
    assert (await api.get(url, headers=other.headers())).status_code == 404
    assert (await api.post(f"{url}/start", headers=other.headers())).status_code == 404

    started = await api.post(f"{url}/start", headers=tenant.headers())
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "running"
    assert started.json()["progress"] | {} == {
        "queued": 1,
        "sending": 0,
        "sent": 0,
        "delivered": 0,
        "read": 0,
        "failed": 0,
        "excluded": 1,
        "cancelled": 0,
        "replied": 0,
    }
    assert (started.json()["recipient_count"], started.json()["excluded_count"]) == (2, 1)
    again = await api.post(f"{url}/start", headers=tenant.headers())
    assert again.status_code == 409

    page = await api.get(
        f"{url}/recipients", params={"status": "excluded"}, headers=tenant.headers(read_only=True)
    )
    assert page.status_code == 200, page.text
    assert [r["exclusion_reason"] for r in page.json()["data"]] == ["no_address"]
    first = await api.get(f"{url}/recipients", params={"limit": 1}, headers=tenant.headers())
    rest = await api.get(
        f"{url}/recipients", params={"after": first.json()["next_after"]}, headers=tenant.headers()
    )
    assert len(first.json()["data"]) == 1 and len(rest.json()["data"]) == 1
    assert rest.json()["next_after"] is None

    async def move(action: str) -> httpx.Response:
        return await api.post(f"{url}/{action}", headers=tenant.headers())

    assert (await move("resume")).status_code == 409  # running: nothing to resume
    paused = await api.post(f"{url}/pause", json={"reason": "Typo"}, headers=tenant.headers())
    assert (paused.json()["status"], paused.json()["pause_reason"]) == ("paused", "Typo")
    assert (await move("resume")).json()["status"] == "running"
    cancelled = (await move("cancel")).json()
    assert cancelled["status"] == "cancelled"
    assert (cancelled["progress"]["queued"], cancelled["progress"]["cancelled"]) == (0, 1)
    assert error_of(await move("pause"))["code"] == "bad_status"
    listed = await api.get("/v1/campaigns", headers=tenant.headers(read_only=True))
    assert campaign["id"] in [c["id"] for c in listed.json()]
    assert (await api.get("/v1/campaigns", headers=other.headers())).json() == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"template": {"name": "no_such", "language": "en"}}, "unknown_template"),
        ({"template": {"name": "spring_sale", "language": "en"}}, "1 variable(s), 0 value(s)"),
        (
            {"account": "telegram", "template": {"name": "spring_sale", "language": "en"}},
            "templates_not_supported",
        ),
        ({"text": "Hi", "timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"text": "Hi", "starts_at": "2020-01-01T09:00:00"}, "schedule_in_past"),
        (
            {"text": "Hi", "starts_at": "2020-01-01T09:00:00", "local_time": True},
            "schedule_in_past",
        ),
        ({"text": "Hi", "local_time": True}, "local_time needs starts_at"),
        (
            {"text": "Hi", "audience": {"field": "name", "op": "eq", "value": "Nobody"}},
            "empty_audience",
        ),
        ({"text": "Hi", "audience": {"field": "shoe_size", "op": "eq", "value": 1}}, "shoe_size"),
        ({"text": "Hi", "template": {"name": "spring_sale", "language": "en"}}, "not both"),
        ({"text": "Hi", "account": "missing"}, "unknown_account"),
        ({"text": "Hi {{ contact.name "}, "text: template syntax error on line 1"),
        ({"text": "Hi {{ agent.name }}"}, "contact and organization variables, not agent"),
        (
            {"template": {"name": "spring_sale", "language": "en", "body": ["{% if %}"]}},
            "template.body[0]: template syntax error",
        ),
    ],
)
async def test_bad_input_is_a_422_naming_the_problem_and_nothing_is_stored(
    api: httpx.AsyncClient,
    tenant: Tenant,
    db: Connection,
    made: dict[str, UUID],
    change: dict[str, Any],
    problem: str,
) -> None:
    which = change.pop("account", "whatsapp")
    account = made.get(which, UUID(int=7))
    body = {"channel_account_id": str(account), "name": "Bad", "audience": VIP, **change}
    answer = await api.post("/v1/campaigns", json=body, headers=tenant.headers())
    assert answer.status_code == 422, answer.text
    error = error_of(answer)
    assert problem in f"{error['code']} {error['message']} {error.get('details')}"
    stored = "select count(*) from campaigns where organization_id = $1 and name = 'Bad'"
    assert await db.fetchval(stored, tenant.org) == 0
