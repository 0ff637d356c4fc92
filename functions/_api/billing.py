"""/v1/billing — the key's organization's plan, subscription and usage (read), and the
feature check the plan-gated resources depend on."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from functions._api.common import READ, ReadKey, in_tx
from shared.billing import plans, require_feature
from shared.billing.plans import Feature
from shared.web import RuntimeDep

router = APIRouter(prefix="/billing", tags=["billing"])


class Plan(BaseModel):
    code: str
    name: str
    position: int
    limits: dict[str, int]
    features: list[str]
    purchasable: bool


class Subscription(BaseModel):
    organization_id: Any
    plan: str
    status: Literal["trialing", "active", "past_due", "unpaid", "canceled", "incomplete"]
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    grace_until: datetime | None
    effective_plan: str
    effective_plan_name: str
    limits: dict[str, int]
    features: list[str]


class Limit(BaseModel):
    limit: int | None
    usage: int


class Usage(BaseModel):
    organization_id: Any
    plan: str
    period_start: datetime
    limits: dict[str, Limit]


class Plans(BaseModel):
    data: list[Plan]


def requires(feature: Feature) -> Any:
    """A router dependency: 402 `feature_unavailable` unless the key's plan has `feature`."""

    async def check(key: ReadKey, runtime: RuntimeDep) -> None:
        async with runtime.db.service_conn() as conn:  # one statement: no BEGIN/COMMIT
            await require_feature(conn=conn, organization_id=key.organization_id, feature=feature)

    return Depends(check)


@router.get("/plans", response_model=Plans, responses=READ, summary="The plans on offer")
async def list_plans(key: ReadKey, runtime: RuntimeDep) -> Any:
    return {"data": await in_tx(runtime, key, lambda conn: plans.list_plans(conn=conn))}


@router.get(
    "/subscription", response_model=Subscription, responses=READ, summary="The subscription"
)
async def subscription(key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: plans.subscription_of(conn=conn, organization_id=key.organization_id),
    )


@router.get("/usage", response_model=Usage, responses=READ, summary="Limits and current usage")
async def usage(key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime, key, lambda conn: plans.usage_of(conn=conn, organization_id=key.organization_id)
    )
