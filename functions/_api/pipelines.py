"""/v1/pipelines — read-only: pipelines, their stages, and a pipeline's kanban board."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from functions._api.common import READ, READ_ONE, ListQuery, Page, ReadKey, in_tx, list_of
from functions._api.schemas import Board, Pipeline
from shared.crm import deals
from shared.crm.entities import PIPELINES
from shared.web import RuntimeDep

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


@router.get("", response_model=Page[Pipeline], responses=READ, summary="List pipelines")
async def list_pipelines(key: ReadKey, runtime: RuntimeDep, query: ListQuery) -> Any:
    return await list_of(runtime, key, PIPELINES, query)


@router.get("/{pipeline_id}", response_model=Pipeline, responses=READ_ONE, summary="Get a pipeline")
async def get_pipeline(pipeline_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: deals.get_pipeline(
            conn=conn, organization_id=key.organization_id, pipeline_id=pipeline_id
        ),
    )


@router.get(
    "/{pipeline_id}/board",
    response_model=Board,
    responses=READ_ONE,
    summary="A pipeline's kanban board",
    description="Every stage with its open deals in board order (with contact and company"
    " names) and the count and value per currency of all its open deals.",
)
async def get_board(
    pipeline_id: UUID,
    key: ReadKey,
    runtime: RuntimeDep,
    per_stage: Annotated[
        int, Query(ge=1, le=1000, description="Deals per stage, from the top")
    ] = 200,
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: deals.load_board(
            conn=conn,
            organization_id=key.organization_id,
            pipeline_id=pipeline_id,
            per_stage=per_stage,
        ),
    )
