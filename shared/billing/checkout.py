"""Owners subscribe through Stripe Checkout and manage through the Customer Portal.

The owner check and the plan's price are read under the owner's RLS; the Stripe
customer is created once per organization (before its first Checkout, so every
later event maps to the organization by customer) and stored by the service.
Stripe is called outside any transaction.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shared.auth import UserPrincipal
from shared.billing import stripe_api
from shared.db import Connection, fetch_found
from shared.errors import Conflict, Forbidden, Unprocessable
from shared.runtime import Runtime

LIVE = ("trialing", "active", "past_due")


async def _owned(conn: Connection, organization_id: UUID) -> dict[str, Any]:
    """The organization's billing row, if the caller owns it (404 if not a member)."""
    row = await fetch_found(
        conn,
        "No such organization",
        "select o.name, s.stripe_customer_id, s.stripe_subscription_id, s.status,"
        "       o.id in (select app.org_ids_with_role('owner')) as owner"
        "  from public.organizations o join public.subscriptions s on s.organization_id = o.id"
        " where o.id = $1",
        organization_id,
    )
    if not row["owner"]:
        raise Forbidden("Only the organization's owners manage its billing", code="owner_only")
    return row


async def start_checkout(
    *, runtime: Runtime, user: UserPrincipal, organization_id: UUID, plan: str
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        billing = await _owned(conn, organization_id)
        price = await conn.fetchval(
            "select p.stripe_price_ids[1] from public.plans p where p.code = $1 and p.is_public",
            plan,
        )
    if price is None:
        raise Unprocessable(
            f"plan: {plan!r} is not a plan one can subscribe to",
            code="plan_not_purchasable",
            details=[{"field": "plan", "message": "no such plan, or not sold through Checkout"}],
        )
    if billing["stripe_subscription_id"] and billing["status"] in LIVE:
        raise Conflict(
            "The organization already has a subscription; change its plan in the portal",
            code="already_subscribed",
        )
    customer = billing["stripe_customer_id"]
    if customer is None:
        created = await stripe_api.create_customer(
            settings=runtime.settings, organization_id=organization_id, name=billing["name"]
        )
        async with runtime.db.service_tx() as conn:
            customer = await conn.fetchval(
                "update public.subscriptions"
                "   set stripe_customer_id = coalesce(stripe_customer_id, $2)"
                " where organization_id = $1 returning stripe_customer_id",
                organization_id,
                created,
            )
    session = await stripe_api.create_checkout_session(
        settings=runtime.settings, organization_id=organization_id, customer=customer, price=price
    )
    return {**session, "plan": plan}


async def open_portal(
    *, runtime: Runtime, user: UserPrincipal, organization_id: UUID
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        billing = await _owned(conn, organization_id)
    if billing["stripe_customer_id"] is None:
        raise Conflict(
            "The organization has no billing account yet; subscribe through checkout first",
            code="no_billing_account",
        )
    return await stripe_api.create_portal_session(
        settings=runtime.settings, customer=billing["stripe_customer_id"]
    )
