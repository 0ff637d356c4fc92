"""/functions/v1/billing — the organization's plan, subscription and usage; Stripe
Checkout and the Customer Portal.

GET  /plans                                   signed-in users: the plans on offer
GET  /subscription?organization_id=…          members: plan, status, period, effective limits
GET  /usage?organization_id=…                 members: each limit, its value and current usage
POST /checkout {organization_id, plan}        owners: a Stripe Checkout Session to subscribe
POST /portal {organization_id}                owners: a Customer Portal session to manage it

Plan changes, cancellation and proration are Stripe's (the portal); what Stripe
decides reaches us through the `stripe-webhook` function.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, Field

from functions._api.billing import Plans, Subscription, Usage
from shared.billing import checkout, plans
from shared.web import CurrentUser, RuntimeDep, function_app

router = APIRouter()
ERRORS = (400, 401, 402, 403, 404, 409, 502, 503)


class CheckoutRequest(BaseModel):
    organization_id: UUID
    plan: str = Field(min_length=1, max_length=40, description="A plan's code, e.g. `pro`")


class PortalRequest(BaseModel):
    organization_id: UUID


@router.get("/plans", response_model=Plans)
async def list_plans(user: CurrentUser, runtime: RuntimeDep) -> Any:
    async with runtime.db.user_tx(user) as conn:
        return {"data": await plans.list_plans(conn=conn)}


@router.get("/subscription", response_model=Subscription)
async def subscription(organization_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> Any:
    async with runtime.db.user_tx(user) as conn:
        return await plans.subscription_of(conn=conn, organization_id=organization_id)


@router.get("/usage", response_model=Usage)
async def usage(organization_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> Any:
    async with runtime.db.user_tx(user) as conn:
        return await plans.usage_of(conn=conn, organization_id=organization_id)


@router.post("/checkout", status_code=201)
async def start_checkout(
    body: CheckoutRequest, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    return await checkout.start_checkout(
        runtime=runtime, user=user, organization_id=body.organization_id, plan=body.plan
    )


@router.post("/portal", status_code=201)
async def open_portal(
    body: PortalRequest, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    return await checkout.open_portal(
        runtime=runtime, user=user, organization_id=body.organization_id
    )


app = function_app(router, name="billing", error_statuses=ERRORS)
