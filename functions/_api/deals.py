"""/v1/deals — opportunities on the pipelines' kanban boards."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi.responses import JSONResponse

from functions._api.common import (
    READ_ONE,
    WRITE,
    IdempotencyKey,
    ReadKey,
    WriteKey,
    idempotent,
    in_tx,
)
from functions._api.crud import Resource, crud_router
from functions._api.schemas import Deal, StageChange
from functions._api.tagging import add_tag_routes
from shared.crm import deals
from shared.crm.entities import DEALS
from shared.web import RuntimeDep

router = crud_router(
    Resource(
        collection="deals",
        entity=DEALS,
        model=Deal,
        create_input=deals.DealCreate,
        update_input=deals.DealUpdate,
        create=deals.create_deal,
        get=deals.get_deal,
        update=deals.update_deal,
        delete=deals.delete_deal,
    )
)


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
