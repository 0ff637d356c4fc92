"""/v1/business-hours, /v1/sla-policies and /v1/conversations/{id}/sla.

Business hours and SLA policies are the organization's SLA configuration: any key
reads them, write keys (which act as managers) change them. A conversation's SLA
is read-only: the events worker runs its clocks.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from functions._api.common import (
    READ,
    READ_ONE,
    WRITE,
    IdempotencyKey,
    ReadKey,
    WriteKey,
    idempotent,
    in_tx,
)
from shared.sla import clocks, config
from shared.sla.inputs import (
    BusinessHoursCreate,
    BusinessHoursUpdate,
    Holiday,
    Interval,
    PolicyCreate,
    PolicyUpdate,
    Weekday,
)
from shared.web import RuntimeDep

router = APIRouter()


class BusinessHours(BaseModel):
    id: UUID
    organization_id: UUID
    channel_account_id: UUID | None
    name: str
    timezone: str
    weekly: dict[Weekday, list[Interval]]
    holidays: list[Holiday]
    created_at: datetime
    updated_at: datetime


class SlaPolicy(BaseModel):
    id: UUID
    organization_id: UUID
    name: str
    first_response_seconds: int | None
    next_response_seconds: int | None
    resolution_seconds: int | None
    business_hours_only: bool
    is_default: bool
    channel_account_id: UUID | None
    created_at: datetime
    updated_at: datetime


class SlaClock(BaseModel):
    id: int
    kind: Literal["first_response", "next_response", "resolution"]
    policy_id: UUID | None
    business_hours_only: bool
    started_at: datetime
    due_at: datetime | None
    stopped_at: datetime | None
    outcome: Literal["met", "breached", "cancelled"] | None
    met: bool
    breached: bool
    breached_at: datetime | None
    wall_seconds: int | None
    business_seconds: int | None


class SlaState(BaseModel):
    conversation_id: UUID
    policy_id: UUID | None
    running: dict[Literal["first_response", "next_response", "resolution"], SlaClock | None]
    clocks: list[SlaClock]


class BusinessHoursList(BaseModel):
    data: list[BusinessHours]


class SlaPolicyList(BaseModel):
    data: list[SlaPolicy]


# ---- business hours -------------------------------------------------------------------------

HOURS = "/business-hours"
HOURS_TAG: list[str | Enum] = ["business-hours"]


@router.get(
    HOURS,
    response_model=BusinessHoursList,
    responses=READ,
    tags=HOURS_TAG,
    summary="List business hours (the organization's and each channel account's)",
)
async def list_business_hours(key: ReadKey, runtime: RuntimeDep) -> Any:
    rows = await in_tx(
        runtime,
        key,
        lambda conn: config.list_business_hours(conn=conn, organization_id=key.organization_id),
    )
    return {"data": rows}


@router.post(
    HOURS,
    status_code=201,
    response_model=BusinessHours,
    responses=WRITE,
    tags=HOURS_TAG,
    summary="Create business hours",
    description="A timezone (IANA), open intervals per weekday that do not overlap, and"
    " holidays. One set for the organization, and at most one per channel account, which"
    " wins over the organization's for its conversations.",
)
async def create_business_hours(
    body: BusinessHoursCreate,
    key: WriteKey,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await idempotent(
        runtime,
        key,
        scope="business-hours.create",
        idempotency_key=idempotency_key,
        request=body.model_dump(mode="json"),
        model=BusinessHours,
        work=lambda conn: config.create_business_hours(
            conn=conn, organization_id=key.organization_id, data=body
        ),
    )


@router.get(
    HOURS + "/{business_hours_id}",
    response_model=BusinessHours,
    responses=READ_ONE,
    tags=HOURS_TAG,
    summary="Get business hours",
)
async def get_business_hours(business_hours_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: config.get_business_hours(
            conn=conn, organization_id=key.organization_id, business_hours_id=business_hours_id
        ),
    )


@router.patch(
    HOURS + "/{business_hours_id}",
    response_model=BusinessHours,
    responses=WRITE,
    tags=HOURS_TAG,
    summary="Update business hours",
    description="Fields given replace the stored ones whole (weekly, holidays).",
)
async def update_business_hours(
    business_hours_id: UUID, body: BusinessHoursUpdate, key: WriteKey, runtime: RuntimeDep
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: config.update_business_hours(
            conn=conn,
            organization_id=key.organization_id,
            business_hours_id=business_hours_id,
            data=body,
        ),
    )


@router.delete(
    HOURS + "/{business_hours_id}",
    status_code=204,
    responses=WRITE,
    tags=HOURS_TAG,
    summary="Delete business hours",
)
async def delete_business_hours(
    business_hours_id: UUID, key: WriteKey, runtime: RuntimeDep
) -> Response:
    await in_tx(
        runtime,
        key,
        lambda conn: config.delete_business_hours(
            conn=conn, organization_id=key.organization_id, business_hours_id=business_hours_id
        ),
    )
    return Response(status_code=204)


# ---- SLA policies ---------------------------------------------------------------------------

POLICIES = "/sla-policies"
POLICIES_TAG: list[str | Enum] = ["sla-policies"]


@router.get(
    POLICIES,
    response_model=SlaPolicyList,
    responses=READ,
    tags=POLICIES_TAG,
    summary="List SLA policies",
)
async def list_policies(key: ReadKey, runtime: RuntimeDep) -> Any:
    rows = await in_tx(
        runtime,
        key,
        lambda conn: config.list_policies(conn=conn, organization_id=key.organization_id),
    )
    return {"data": rows}


@router.post(
    POLICIES,
    status_code=201,
    response_model=SlaPolicy,
    responses=WRITE,
    tags=POLICIES_TAG,
    summary="Create an SLA policy",
    description="First-response, next-response and resolution targets in seconds, counted"
    " in business hours only if asked. A default policy applies to conversations whose"
    " first clock starts after it exists: the organization's, or one channel account's,"
    " which wins.",
)
async def create_policy(
    body: PolicyCreate,
    key: WriteKey,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await idempotent(
        runtime,
        key,
        scope="sla-policies.create",
        idempotency_key=idempotency_key,
        request=body.model_dump(mode="json"),
        model=SlaPolicy,
        work=lambda conn: config.create_policy(
            conn=conn, organization_id=key.organization_id, data=body
        ),
    )


@router.get(
    POLICIES + "/{policy_id}",
    response_model=SlaPolicy,
    responses=READ_ONE,
    tags=POLICIES_TAG,
    summary="Get an SLA policy",
)
async def get_policy(policy_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: config.get_policy(
            conn=conn, organization_id=key.organization_id, policy_id=policy_id
        ),
    )


@router.patch(
    POLICIES + "/{policy_id}",
    response_model=SlaPolicy,
    responses=WRITE,
    tags=POLICIES_TAG,
    summary="Update an SLA policy",
    description="New targets apply to clocks started from then on.",
)
async def update_policy(
    policy_id: UUID, body: PolicyUpdate, key: WriteKey, runtime: RuntimeDep
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: config.update_policy(
            conn=conn, organization_id=key.organization_id, policy_id=policy_id, data=body
        ),
    )


@router.delete(
    POLICIES + "/{policy_id}",
    status_code=204,
    responses=WRITE,
    tags=POLICIES_TAG,
    summary="Delete an SLA policy",
)
async def delete_policy(policy_id: UUID, key: WriteKey, runtime: RuntimeDep) -> Response:
    await in_tx(
        runtime,
        key,
        lambda conn: config.delete_policy(
            conn=conn, organization_id=key.organization_id, policy_id=policy_id
        ),
    )
    return Response(status_code=204)


# ---- a conversation's SLA -------------------------------------------------------------------


@router.get(
    "/conversations/{conversation_id}/sla",
    response_model=SlaState,
    responses=READ_ONE,
    tags=["conversations"],
    summary="A conversation's SLA",
    description="Its policy, the clock of each kind now running (with its due time) and"
    " every clock, newest first: met or breached, with the time taken in wall-clock and"
    " business-hours seconds.",
)
async def get_conversation_sla(conversation_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: clocks.sla_state(
            conn=conn, organization_id=key.organization_id, conversation_id=conversation_id
        ),
    )
