"""/v1/deals — opportunities on the pipelines' kanban boards."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from functions._api.common import (
    READ,
    READ_ONE,
    WRITE,
    IdempotencyKey,
    ListQuery,
    Page,
    ReadKey,
    WriteKey,
    idempotent,
    in_tx,
    list_of,
)
from functions._api.schemas import Deal, StageChange
from functions._api.tagging import add_tag_routes
from shared.crm import deals
from shared.crm.entities import DEALS
from shared.web import RuntimeDep

router = APIRouter(prefix="/deals", tags=["deals"])


@router.get("", response_model=Page[Deal], responses=READ, summary="List deals")
async def list_deals(key: ReadKey, runtime: RuntimeDep, query: ListQuery) -> Any:
    return await list_of(runtime, key, DEALS, query)


@router.post("", status_code=201, response_model=Deal, responses=WRITE, summary="Create a deal")
async def create_deal(
    body: deals.DealCreate,
    key: WriteKey,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await idempotent(
        runtime,
        key,
        scope="deals.create",
        idempotency_key=idempotency_key,
        request=body.model_dump(mode="json"),
        model=Deal,
        work=lambda conn: deals.create_deal(
            conn=conn, organization_id=key.organization_id, data=body
        ),
    )


@router.get("/{deal_id}", response_model=Deal, responses=READ_ONE, summary="Get a deal")
async def get_deal(deal_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: deals.get_deal(
            conn=conn, organization_id=key.organization_id, deal_id=deal_id
        ),
    )


@router.patch("/{deal_id}", response_model=Deal, responses=WRITE, summary="Update a deal")
async def update_deal(
    deal_id: UUID, body: deals.DealUpdate, key: WriteKey, runtime: RuntimeDep
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: deals.update_deal(
            conn=conn, organization_id=key.organization_id, deal_id=deal_id, data=body
        ),
    )


@router.delete("/{deal_id}", status_code=204, responses=WRITE, summary="Delete a deal")
async def delete_deal(deal_id: UUID, key: WriteKey, runtime: RuntimeDep) -> Response:
    await in_tx(
        runtime,
        key,
        lambda conn: deals.delete_deal(
            conn=conn, organization_id=key.organization_id, deal_id=deal_id
        ),
    )
    return Response(status_code=204)


@router.post(
    "/{deal_id}/move",
    status_code=200,
    response_model=Deal,
    responses=WRITE,
    summary="Move a deal on the board",
    description="Puts the deal at `index` (0 = top) of a stage's column, in one step that"
    " keeps every position in the column unique under concurrent moves.",
)
async def move_deal(
    deal_id: UUID,
    body: deals.DealMove,
    key: WriteKey,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await idempotent(
        runtime,
        key,
        scope="deals.move",
        idempotency_key=idempotency_key,
        request=[str(deal_id), body.model_dump(mode="json")],
        model=Deal,
        work=lambda conn: deals.move_deal(
            conn=conn, organization_id=key.organization_id, deal_id=deal_id, move=body
        ),
        status=200,
    )


@router.get(
    "/{deal_id}/stage-changes",
    response_model=list[StageChange],
    responses=READ_ONE,
    summary="A deal's stage history",
)
async def stage_changes(deal_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: deals.stage_history(
            conn=conn, organization_id=key.organization_id, deal_id=deal_id
        ),
    )


add_tag_routes(router, DEALS, Deal)
