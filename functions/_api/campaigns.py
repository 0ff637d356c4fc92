"""/v1/campaigns — broadcast campaigns and their notification log.

Any key reads campaigns and their recipients; write keys (which act as managers)
create, start, pause, resume and cancel them. A campaign is checked whole when it
is created (a 422 naming the problem, nothing stored). Starting one snapshots its
audience into recipients; the campaign-dispatch cron sends them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from functions._api.billing import requires
from functions._api.common import READ, READ_ONE, WRITE, ReadKey, WriteKey, in_tx
from shared.campaigns import manage
from shared.campaigns.snapshot import start_campaign
from shared.web import RuntimeDep

router = APIRouter(prefix="/campaigns", tags=["campaigns"], dependencies=[requires("campaigns")])
Status = Literal[
    "queued", "sending", "sent", "delivered", "read", "failed", "excluded", "cancelled"
]
# Recipients by status, and `replied`: those who answered within 7 days of the send.
Counted = Literal[
    "queued", "sending", "sent", "delivered", "read", "failed", "excluded", "cancelled", "replied"
]


class Campaign(BaseModel):
    id: UUID
    organization_id: UUID
    channel_account_id: UUID
    name: str
    template: dict[str, Any] | None
    text: str | None
    audience: Any
    starts_at: datetime | None
    timezone: str
    local_time: bool
    status: Literal["draft", "scheduled", "running", "paused", "completed", "cancelled"]
    pause_reason: str | None
    recipient_count: int
    excluded_count: int
    progress: dict[Counted, int]
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime


class Recipient(BaseModel):
    id: int
    contact_id: UUID
    address: str | None
    status: Status
    exclusion_reason: Literal["no_address", "opted_out"] | None
    due_at: datetime | None
    message_id: UUID | None
    provider_message_id: str | None
    attempts: int
    error: dict[str, Any] | None
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    replied_at: datetime | None
    updated_at: datetime


class Action(BaseModel):
    reason: str | None = Field(
        default=None, max_length=500, description="Why: kept as a pause's or cancel's reason"
    )


class Recipients(BaseModel):
    data: list[Recipient]
    next_after: int | None


@router.get("", response_model=list[Campaign], responses=READ, summary="List campaigns")
async def list_campaigns(key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: manage.list_campaigns(conn=conn, organization_id=key.organization_id),
    )


@router.post(
    "", status_code=201, response_model=Campaign, responses=WRITE, summary="Create a campaign"
)
async def create_campaign(body: manage.CampaignCreate, key: WriteKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: manage.create_campaign(
            conn=conn, organization_id=key.organization_id, data=body
        ),
    )


@router.get("/{campaign_id}", response_model=Campaign, responses=READ_ONE, summary="Get a campaign")
async def get_campaign(campaign_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: manage.get_campaign(
            conn=conn, organization_id=key.organization_id, campaign_id=campaign_id
        ),
    )


@router.post(
    "/{campaign_id}/start",
    response_model=Campaign,
    responses=WRITE,
    summary="Start a campaign now: snapshot its audience into recipients",
)
async def start(
    campaign_id: UUID, key: WriteKey, runtime: RuntimeDep, body: Action | None = None
) -> Any:
    await get_campaign(campaign_id, key, runtime)  # the key's own campaign, or a 404
    # Recipients are written by the service only; the organization is the key's.
    async with runtime.db.service_tx() as conn:
        await start_campaign(
            conn=conn, organization_id=key.organization_id, campaign_id=campaign_id
        )
    return await get_campaign(campaign_id, key, runtime)


def _steering(action: str, summary: str) -> None:
    async def endpoint(
        campaign_id: UUID, key: WriteKey, runtime: RuntimeDep, body: Action | None = None
    ) -> Any:
        return await in_tx(
            runtime,
            key,
            lambda conn: manage.steer(
                conn=conn,
                organization_id=key.organization_id,
                campaign_id=campaign_id,
                action=action,
                reason=body.reason if body else None,
            ),
        )

    endpoint.__name__ = f"{action}_campaign"
    router.add_api_route(
        f"/{{campaign_id}}/{action}",
        endpoint,
        methods=["POST"],
        response_model=Campaign,
        responses=WRITE,
        summary=summary,
    )


_steering("pause", "Pause a campaign (no more sends until resumed)")
_steering("resume", "Resume a paused campaign")
_steering("cancel", "Cancel a campaign (its recipients not yet sent become cancelled)")


@router.get(
    "/{campaign_id}/recipients",
    response_model=Recipients,
    responses=READ_ONE,
    summary="A campaign's recipients: each one's attempts, message and status timeline",
)
async def recipients(
    campaign_id: UUID,
    key: ReadKey,
    runtime: RuntimeDep,
    status: Status | None = None,
    after: Annotated[int | None, Query(ge=0, description="next_after of the last page")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: manage.list_recipients(
            conn=conn,
            organization_id=key.organization_id,
            campaign_id=campaign_id,
            status=status,
            after=after,
            limit=limit,
        ),
    )
