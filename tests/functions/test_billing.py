"""The billing function, the public API's /v1/billing and the plan's limits and
features through the functions and the API, against a fake of Stripe's API."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio

from shared.db import Connection
from shared.runtime import Runtime
from tests.functions.billing_kit import (
    PRICE,
    FakeStripe,
    billing_client,
    billing_runtime,
    fake_stripe,
    fixture,
    priced_db,
    signed,
)
from tests.shared.billing.kit import put_on_plan, race
from tests.support import auth, issue_key, make_contact, make_org, make_user, member

pytestmark = pytest.mark.asyncio(loop_scope="module")
runtime, client, stripe_api, db = billing_runtime, billing_client, fake_stripe, priced_db
BILLING = "/functions/v1/billing"
API = "/functions/v1/api/v1"


@pytest_asyncio.fixture(loop_scope="module")
async def team(db: Connection) -> dict[str, Any]:
    owner = await make_user(db)
    org = await make_org(db, owner)
    return {"org": org, "owner": owner, "admin": await member(db, org, "admin")}


def as_(runtime: Runtime, user: UUID) -> dict[str, str]:
    return auth(runtime.settings, user)


async def test_members_read_plans_subscription_and_usage(
    client: httpx.AsyncClient, runtime: Runtime, db: Connection, team: dict[str, Any]
):
    org, admin = team["org"], team["admin"]
    plans = (await client.get(f"{BILLING}/plans", headers=as_(runtime, admin))).json()["data"]
    assert [(p["code"], p["purchasable"]) for p in plans][:4] == [
        ("free", False),
        ("starter", False),
        ("pro", True),
        ("enterprise", False),
    ]
    assert all("stripe_price_ids" not in p for p in plans)
    await put_on_plan(db, org, limits={"contacts": 10, "seats": 5})
    await make_contact(db, org)
    sub = (
        await client.get(
            f"{BILLING}/subscription",
            params={"organization_id": str(org)},
            headers=as_(runtime, admin),
        )
    ).json()
    assert (sub["status"], sub["limits"]) == ("active", {"contacts": 10, "seats": 5})
    usage = (
        await client.get(
            f"{BILLING}/usage", params={"organization_id": str(org)}, headers=as_(runtime, admin)
        )
    ).json()
    assert usage["limits"]["contacts"] == {"limit": 10, "usage": 1}
    assert usage["limits"]["seats"] == {"limit": 5, "usage": 2}
    assert usage["limits"]["api_keys"] == {"limit": None, "usage": 0}
    stranger = await make_user(db)
    other = await client.get(
        f"{BILLING}/usage", params={"organization_id": str(org)}, headers=as_(runtime, stranger)
    )
    assert other.status_code == 404


async def test_only_owners_start_checkout_and_the_flow_ends_subscribed(
    client: httpx.AsyncClient,
    runtime: Runtime,
    db: Connection,
    stripe_api: FakeStripe,
    team: dict[str, Any],
):
    org, owner, admin = team["org"], team["owner"], team["admin"]
    body = {"organization_id": str(org), "plan": "pro"}
    refused = await client.post(f"{BILLING}/checkout", json=body, headers=as_(runtime, admin))
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "owner_only")
    unsold = {"organization_id": str(org), "plan": "enterprise"}
    answer = await client.post(f"{BILLING}/checkout", json=unsold, headers=as_(runtime, owner))
    assert answer.json()["error"]["code"] == "plan_not_purchasable"
    assert stripe_api.router.calls.call_count == 0

    started = await client.post(f"{BILLING}/checkout", json=body, headers=as_(runtime, owner))
    assert started.status_code == 201, started.text
    assert started.json()["url"].startswith("https://checkout.stripe.com/")
    [customer_form] = stripe_api.posted["/v1/customers"]
    assert customer_form["metadata[organization_id]"] == [str(org)]
    customer = await db.fetchval(
        "select stripe_customer_id from public.subscriptions where organization_id = $1", org
    )
    [session] = stripe_api.posted["/v1/checkout/sessions"]
    assert session["customer"] == [customer]
    assert session["line_items[0][price]"] == [PRICE]
    assert session["client_reference_id"] == [str(org)]
    assert session["mode"] == ["subscription"]

    # Stripe completes the Checkout: its webhook subscribes the organization
    ids = {"customer": customer, "subscription": f"sub_{customer[4:]}"}
    stripe_api.set_state(ids, "active")
    assert runtime.settings.stripe_webhook_secret is not None
    payload, headers = signed(
        fixture("checkout.session.completed", **ids, event=f"evt_{customer}"),
        runtime.settings.stripe_webhook_secret.get_secret_value(),
    )
    hook = await client.post("/functions/v1/stripe-webhook", content=payload, headers=headers)
    assert hook.json()["outcome"] == "applied"
    sub = (
        await client.get(
            f"{BILLING}/subscription",
            params={"organization_id": str(org)},
            headers=as_(runtime, owner),
        )
    ).json()
    assert (sub["plan"], sub["effective_plan"], sub["status"]) == ("pro", "pro", "active")

    again = await client.post(f"{BILLING}/checkout", json=body, headers=as_(runtime, owner))
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_subscribed")
    portal = await client.post(
        f"{BILLING}/portal", json={"organization_id": str(org)}, headers=as_(runtime, owner)
    )
    assert portal.status_code == 201
    assert portal.json()["url"].startswith("https://billing.stripe.com/")
    assert stripe_api.posted["/v1/billing_portal/sessions"][0]["customer"] == [customer]


async def test_portal_needs_a_billing_account_and_stripe_down_is_a_503(
    client: httpx.AsyncClient, runtime: Runtime, stripe_api: FakeStripe, team: dict[str, Any]
):
    org, owner = team["org"], team["owner"]
    portal = await client.post(
        f"{BILLING}/portal", json={"organization_id": str(org)}, headers=as_(runtime, owner)
    )
    assert (portal.status_code, portal.json()["error"]["code"]) == (409, "no_billing_account")
    stripe_api.down = True
    body = {"organization_id": str(org), "plan": "pro"}
    down = await client.post(f"{BILLING}/checkout", json=body, headers=as_(runtime, owner))
    assert (down.status_code, down.json()["error"]["code"]) == (503, "stripe_unavailable")


async def test_a_limit_holds_through_a_function(
    client: httpx.AsyncClient, runtime: Runtime, db: Connection, team: dict[str, Any]
):
    org, owner = team["org"], team["owner"]
    await put_on_plan(db, org, limits={"api_keys": 1})

    async def by_sql(conn: Connection) -> Any:
        return await conn.fetchval(
            "select id from app.create_api_key($1, 'sql', '{read}', 'cg_sql', '\\x01')", org
        )

    async def by_function() -> httpx.Response:
        return await client.post(
            "/functions/v1/api-keys",
            json={"organization_id": str(org), "name": "function"},
            headers=as_(runtime, owner),
        )

    response = await race(runtime, db, owner, by_sql, by_function)
    assert response.status_code == 402, response.text
    assert response.json()["error"] == {
        "code": "plan_limit",
        "message": response.json()["error"]["message"],
        "details": {
            "code": "plan_limit",
            "limit": "api_keys",
            "value": 1,
            "usage": 1,
            "plan": response.json()["error"]["details"]["plan"],
        },
    }


async def test_a_limit_holds_through_the_public_api(
    client: httpx.AsyncClient, runtime: Runtime, db: Connection, team: dict[str, Any]
):
    org, owner = team["org"], team["owner"]
    key, _ = await issue_key(runtime, org, owner, ["read", "write"])
    await put_on_plan(db, org, limits={"contacts": 1})

    async def by_sql(conn: Connection) -> Any:
        return await conn.execute("insert into public.contacts (organization_id) values ($1)", org)

    async def by_api() -> httpx.Response:
        return await client.post(
            f"{API}/contacts", json={"name": "Ada"}, headers={"Authorization": f"Bearer {key}"}
        )

    response = await race(runtime, db, owner, by_sql, by_api)
    assert response.status_code == 402, response.text
    assert response.json()["error"]["details"]["limit"] == "contacts"
    assert (
        await db.fetchval("select count(*) from public.contacts where organization_id = $1", org)
        == 1
    )


async def test_features_off_for_the_plan_are_refused(
    client: httpx.AsyncClient, runtime: Runtime, db: Connection, team: dict[str, Any]
):
    org, owner = team["org"], team["owner"]
    key, _ = await issue_key(runtime, org, owner, ["read"])
    headers = {"Authorization": f"Bearer {key}"}
    await put_on_plan(db, org, features=("api",))
    usage = await client.get(f"{API}/billing/usage", headers=headers)
    assert usage.status_code == 200
    assert set(usage.json()["limits"]) >= {"contacts", "seats", "outbound_messages_per_period"}
    for path, feature in (
        ("/campaigns", "campaigns"),
        ("/sla-policies", "sla"),
        ("/bot-flows", "bots"),
    ):
        refused = await client.get(f"{API}{path}", headers=headers)
        assert refused.status_code == 402, path
        assert refused.json()["error"]["code"] == "feature_unavailable"
        assert refused.json()["error"]["details"]["feature"] == feature
    await put_on_plan(db, org, features=("campaigns", "sla", "bots"))
    no_api = await client.get(f"{API}/billing/subscription", headers=headers)
    assert (no_api.status_code, no_api.json()["error"]["code"]) == (402, "feature_unavailable")
    assert no_api.json()["error"]["details"]["feature"] == "api"
