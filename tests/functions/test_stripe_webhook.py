"""stripe-webhook: Stripe's documented events, signed by the stripe library, applied
once each by reading the subscription's current state from (a fake of) Stripe's API."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio

from shared.billing import sync
from shared.db import Connection
from shared.runtime import Runtime
from tests.functions.billing_kit import (
    FakeStripe,
    billing_client,
    billing_runtime,
    fake_stripe,
    fixture,
    new_ids,
    priced_db,
    signed,
)
from tests.support import make_org, make_user

pytestmark = pytest.mark.asyncio(loop_scope="module")
runtime, client, stripe_api, db = billing_runtime, billing_client, fake_stripe, priced_db
URL = "/functions/v1/stripe-webhook"


@pytest_asyncio.fixture(loop_scope="module")
async def customer(db: Connection) -> tuple[UUID, dict[str, str]]:
    """An organization whose owner went to Checkout: it has its Stripe customer."""
    org = await make_org(db, await make_user(db))
    ids = new_ids()
    await db.execute(
        "update public.subscriptions set stripe_customer_id = $2 where organization_id = $1",
        org,
        ids["customer"],
    )
    return org, ids


def secret(runtime: Runtime) -> str:
    assert runtime.settings.stripe_webhook_secret is not None
    return runtime.settings.stripe_webhook_secret.get_secret_value()


async def deliver(
    client: httpx.AsyncClient, runtime: Runtime, event: dict[str, Any], **options: Any
) -> httpx.Response:
    body, headers = signed(event, options.pop("secret", None) or secret(runtime), **options)
    return await client.post(URL, content=body, headers=headers)


async def subscription(db: Connection, org: UUID) -> dict[str, Any]:
    row = await db.fetchrow("select * from public.subscriptions where organization_id = $1", org)
    assert row is not None
    return dict(row)


async def test_checkout_completed_subscribes_the_organization(
    client: httpx.AsyncClient, runtime: Runtime, db: Connection, stripe_api: FakeStripe, customer
):
    org, ids = customer
    stripe_api.set_state(ids, "active")
    event = fixture("checkout.session.completed", **ids, event="evt_checkout_" + ids["customer"])
    response = await deliver(client, runtime, event)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "received": True,
        "id": event["id"],
        "type": "checkout.session.completed",
        "duplicate": False,
        "outcome": "applied",
    }
    row = await subscription(db, org)
    assert (row["plan_code"], row["status"], row["stripe_subscription_id"]) == (
        "pro",
        "active",
        ids["subscription"],
    )
    assert row["current_period_start"] == datetime.fromtimestamp(1680064028, UTC)
    assert row["current_period_end"] == datetime.fromtimestamp(1682742428, UTC)

    # the same delivery again: acknowledged, not applied, Stripe not asked again
    calls = stripe_api.router.calls.call_count
    await db.execute(
        "update public.subscriptions set status = 'unpaid' where organization_id = $1", org
    )
    again = await deliver(client, runtime, event)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert stripe_api.router.calls.call_count == calls
    assert (await subscription(db, org))["status"] == "unpaid"


@pytest.mark.parametrize(
    ("why", "options"),
    [
        ("forged", {"secret": "whsec_not_the_endpoints"}),
        ("stale", {"timestamp": int(time.time()) - 301}),
    ],
)
async def test_a_forged_or_stale_signature_is_refused_and_nothing_is_stored(
    why: str,
    options: dict[str, Any],
    client: httpx.AsyncClient,
    runtime: Runtime,
    db: Connection,
    stripe_api: FakeStripe,
    customer,
):
    org, ids = customer
    stripe_api.set_state(ids, "active")
    event = fixture("customer.subscription.updated", **ids, event=f"evt_{why}_{ids['customer']}")
    before = await subscription(db, org)
    response = await deliver(client, runtime, event, **options)
    assert response.status_code == 400, why
    assert response.json()["error"]["code"] == "invalid_signature"
    assert await subscription(db, org) == before
    assert not await db.fetchval(
        "select true from private.stripe_events where id = $1", event["id"]
    )
    assert stripe_api.router.calls.call_count == 0


async def test_no_signature_or_a_body_that_is_no_event_is_a_400(
    client: httpx.AsyncClient, runtime: Runtime
):
    missing = await client.post(URL, content=b"{}", headers={"Content-Type": "application/json"})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "invalid_signature"
    not_events: list[Any] = [[], {"id": "evt_1", "type": "invoice.paid", "data": 3}]
    for not_an_event in not_events:
        body, headers = signed(not_an_event, secret(runtime))
        refused = await client.post(URL, content=body, headers=headers)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_event"


async def test_events_out_of_order_leave_the_current_state(
    client: httpx.AsyncClient, runtime: Runtime, db: Connection, stripe_api: FakeStripe, customer
):
    org, ids = customer
    stripe_api.set_state(ids, "active")
    updated = fixture("customer.subscription.updated", **ids, event=f"evt_u_{ids['customer']}")
    created = fixture("customer.subscription.created", **ids, event=f"evt_c_{ids['customer']}")
    assert created["data"]["object"]["status"] == "incomplete"  # older, and says so
    for event in (updated, created):  # the newer one first
        assert (await deliver(client, runtime, event)).json()["outcome"] == "applied"
    assert (await subscription(db, org))["status"] == "active"


async def test_payment_failure_grace_then_paid_then_deleted(
    client: httpx.AsyncClient, runtime: Runtime, db: Connection, stripe_api: FakeStripe, customer
):
    org, ids = customer
    stripe_api.set_state(ids, "past_due")
    failed = fixture("invoice.payment_failed", **ids, event=f"evt_f1_{ids['customer']}")
    assert (await deliver(client, runtime, failed)).status_code == 200
    row = await subscription(db, org)
    grace = timedelta(days=runtime.settings.billing_grace_days)
    assert row["status"] == "past_due"
    assert abs(row["grace_until"] - (datetime.now(UTC) + grace)) < timedelta(minutes=1)
    # a retry's failure keeps the grace period from the first one
    await deliver(client, runtime, {**failed, "id": f"evt_f2_{ids['customer']}"})
    assert (await subscription(db, org))["grace_until"] == row["grace_until"]

    stripe_api.set_state(ids, "active")
    paid = fixture("invoice.paid", **ids, event=f"evt_p_{ids['customer']}")
    assert (await deliver(client, runtime, paid)).json()["outcome"] == "applied"
    row = await subscription(db, org)
    assert (row["status"], row["grace_until"]) == ("active", None)

    stripe_api.set_state(ids, "canceled", canceled_at=1680164028)
    deleted = fixture("customer.subscription.deleted", **ids, event=f"evt_d_{ids['customer']}")
    assert (await deliver(client, runtime, deleted)).json()["outcome"] == "applied"
    effective = await db.fetchval(
        "select app.effective_plan_code(plan_code, status, grace_until)"
        " from public.subscriptions where organization_id = $1",
        org,
    )
    assert effective == "free"


async def test_other_events_and_unknown_customers_are_acknowledged(
    client: httpx.AsyncClient, runtime: Runtime, db: Connection, stripe_api: FakeStripe
):
    ids = new_ids()
    other = fixture("customer.created", **ids, event=f"evt_o_{ids['customer']}")
    answer = (await deliver(client, runtime, other)).json()
    assert (answer["outcome"], answer["duplicate"]) == ("ignored", False)
    stripe_api.set_state(ids, "active")
    stranger = fixture("customer.subscription.updated", **ids, event=f"evt_s_{ids['customer']}")
    assert (await deliver(client, runtime, stranger)).json()["outcome"] == "unknown_customer"
    outcomes = await db.fetch(
        "select outcome from private.stripe_events where id = any($1) order by outcome",
        [other["id"], stranger["id"]],
    )
    assert [r["outcome"] for r in outcomes] == ["ignored", "unknown_customer"]


async def test_stripe_down_is_a_503_and_the_event_waits_for_stripes_retry(
    client: httpx.AsyncClient, runtime: Runtime, db: Connection, stripe_api: FakeStripe, customer
):
    _, ids = customer
    stripe_api.set_state(ids, "active")
    stripe_api.down = True
    event = fixture("customer.subscription.updated", **ids, event=f"evt_down_{ids['customer']}")
    response = await deliver(client, runtime, event)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "stripe_unavailable"
    assert not await db.fetchval(
        "select true from private.stripe_events where id = $1", event["id"]
    )


async def test_an_older_read_or_an_old_subscriptions_end_never_wins(db: Connection, customer):
    org, ids = customer
    state = fixture("api_subscription", **ids)
    now = datetime.now(UTC)
    grace = timedelta(days=7)
    assert (await sync.apply(conn=db, state=state, read_at=now, grace=grace))[1] == "applied"
    stale = {**state, "status": "unpaid"}
    outcome = await sync.apply(
        conn=db, state=stale, read_at=now - timedelta(seconds=1), grace=grace
    )
    assert outcome == (org, "stale")
    old = {**state, "id": "sub_an_old_one", "status": "canceled"}
    later = now + timedelta(seconds=1)
    assert (await sync.apply(conn=db, state=old, read_at=later, grace=grace))[1] == "superseded"
    row = await subscription(db, org)
    assert (row["status"], row["stripe_subscription_id"]) == ("active", ids["subscription"])
