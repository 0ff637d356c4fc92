"""Stripe's webhook events, applied once each, whatever order they arrive in.

An event is verified with the library (signature and timestamp tolerance), then
recorded in private.stripe_events by its id in the transaction that applies it: a
replay finds the id and changes nothing. Events are not trusted for state: for
each handled event the subscription it names is read again from Stripe's API, and
that current state is written. So an older event arriving late writes what is
true now, never what was true then. Two reads racing each other are ordered by
when they started (`stripe_synced_at`): an earlier read never overwrites a later one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import stripe

from shared.billing import stripe_api
from shared.db import Connection, Database
from shared.errors import BadRequest, ServiceUnavailable
from shared.settings import Settings

HANDLED = frozenset(
    {
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
    }
)
# Stripe's statuses onto ours: what stops access stops it here too.
STATUSES = {
    "trialing": "trialing",
    "active": "active",
    "past_due": "past_due",
    "unpaid": "unpaid",
    "canceled": "canceled",
    "incomplete": "incomplete",
    "incomplete_expired": "canceled",
    "paused": "unpaid",
}
LIVE = frozenset({"trialing", "active", "past_due"})


@dataclass(frozen=True)
class Outcome:
    event_id: str
    type: str
    duplicate: bool
    outcome: str  # applied, ignored, stale, superseded, unknown_customer, duplicate


def verify(*, settings: Settings, payload: bytes, signature: str | None) -> dict[str, Any]:
    """The event, if Stripe signed this payload within the tolerance; else 400."""
    secret = settings.stripe_webhook_secret
    if secret is None:
        raise ServiceUnavailable("Billing is not configured", code="billing_not_configured")
    try:
        event = stripe.Webhook.construct_event(
            payload,
            signature,
            secret.get_secret_value(),
            tolerance=settings.stripe_webhook_tolerance_seconds,
        )
    except stripe.SignatureVerificationError as exc:
        raise BadRequest(
            f"Stripe-Signature does not verify: {exc.user_message}", code="invalid_signature"
        ) from None
    except (ValueError, UnicodeDecodeError, AttributeError, TypeError):  # not a JSON object
        raise BadRequest("The body is not a Stripe event", code="invalid_event") from None
    data: dict[str, Any] = event.to_dict()
    inner = data.get("data")
    if not (
        isinstance(data.get("id"), str)
        and isinstance(data.get("type"), str)
        and isinstance(data.get("created"), int)
        and isinstance(inner, dict)
        and isinstance(inner.get("object"), dict)
    ):
        raise BadRequest("The body is not a Stripe event", code="invalid_event")
    return data


def _id(value: Any) -> str | None:
    """An id, whether Stripe sent it bare or expanded into its object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


def subscription_named(event: dict[str, Any]) -> str | None:
    obj = event["data"]["object"]
    kind = event["type"]
    if kind.startswith("customer.subscription."):
        return _id(obj.get("id"))
    if kind == "checkout.session.completed":
        return _id(obj.get("subscription"))
    if kind.startswith("invoice."):
        # API versions from 2025-03-31 moved it under parent.subscription_details
        parent = ((obj.get("parent") or {}).get("subscription_details") or {}).get("subscription")
        return _id(obj.get("subscription")) or _id(parent)
    return None


async def handle(*, db: Database, settings: Settings, event: dict[str, Any]) -> Outcome:
    event_id, kind = event["id"], event["type"]
    async with db.service_conn() as conn:
        seen = await conn.fetchval("select true from private.stripe_events where id = $1", event_id)
    if seen:
        return Outcome(event_id, kind, True, "duplicate")
    state = None
    read_at = datetime.now(UTC)
    subscription_id = subscription_named(event) if kind in HANDLED else None
    if subscription_id is not None:  # Stripe's current word, read outside any transaction
        state = await stripe_api.retrieve_subscription(
            settings=settings, subscription_id=subscription_id
        )
    async with db.service_tx() as conn:
        created = datetime.fromtimestamp(event["created"], UTC)
        recorded = await conn.fetchval(
            "insert into private.stripe_events (id, type, created, outcome)"
            " values ($1, $2, $3, 'ignored') on conflict (id) do nothing returning true",
            event_id,
            kind,
            created,
        )
        if not recorded:  # the same event, delivered twice at once
            return Outcome(event_id, kind, True, "duplicate")
        if state is None:
            return Outcome(event_id, kind, False, "ignored")
        org, outcome = await apply(
            conn=conn,
            state=state,
            read_at=read_at,
            grace=timedelta(days=settings.billing_grace_days),
        )
        await conn.execute(
            "update private.stripe_events set organization_id = $2, outcome = $3 where id = $1",
            event_id,
            org,
            outcome,
        )
    return Outcome(event_id, kind, False, outcome)


def _moment(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if isinstance(value, int) else None


def _period(state: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """The billing period: on the subscription in older API versions, on its items since."""
    items = (state.get("items") or {}).get("data") or [{}]
    start = state.get("current_period_start") or items[0].get("current_period_start")
    end = state.get("current_period_end") or items[0].get("current_period_end")
    return _moment(start), _moment(end)


def _price(state: dict[str, Any]) -> str | None:
    items = (state.get("items") or {}).get("data") or [{}]
    return _id(items[0].get("price"))


async def apply(
    *, conn: Connection, state: dict[str, Any], read_at: datetime, grace: timedelta
) -> tuple[UUID | None, str]:
    """Write a subscription's state as read from Stripe at `read_at` to its organization
    (found by the customer we created for it at Checkout)."""
    row = await conn.fetchrow(
        "select organization_id, stripe_subscription_id, status, grace_until, stripe_synced_at"
        "  from public.subscriptions where stripe_customer_id = $1 for update",
        _id(state.get("customer")),
    )
    if row is None:
        return None, "unknown_customer"
    org = row["organization_id"]
    if row["stripe_synced_at"] is not None and row["stripe_synced_at"] >= read_at:
        return org, "stale"
    status = STATUSES.get(state.get("status") or "", "incomplete")
    if (
        row["stripe_subscription_id"] not in (None, state["id"])
        and row["status"] in LIVE
        and status not in LIVE
    ):  # an old subscription's end never replaces the live one
        return org, "superseded"
    grace_until = None
    if status == "past_due":
        grace_until = row["grace_until"] if row["status"] == "past_due" else None
        grace_until = grace_until or read_at + grace
    start, end = _period(state)
    await conn.execute(
        """
        update public.subscriptions
           set plan_code = coalesce((select p.code from public.plans p
                                      where $3 = any (p.stripe_price_ids)
                                      order by p.position limit 1), plan_code),
               stripe_subscription_id = $2, status = $4, current_period_start = $5,
               current_period_end = $6, cancel_at_period_end = $7, grace_until = $8,
               stripe_synced_at = $9
         where organization_id = $1
        """,
        org,
        state["id"],
        _price(state),
        status,
        start,
        end,
        bool(state.get("cancel_at_period_end")),
        grace_until,
        read_at,
    )
    return org, "applied"
