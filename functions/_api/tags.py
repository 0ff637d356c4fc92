"""/v1/tags — the organization's labels (apply them on each record's /tags)."""

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
from functions._api.schemas import Tag
from shared.crm import tags
from shared.crm.entities import TAGS
from shared.web import RuntimeDep

router = APIRouter(prefix="/tags", tags=["tags"])


@router.get("", response_model=Page[Tag], responses=READ, summary="List tags")
async def list_tags(key: ReadKey, runtime: RuntimeDep, query: ListQuery) -> Any:
    return await list_of(runtime, key, TAGS, query)


@router.post("", status_code=201, response_model=Tag, responses=WRITE, summary="Create a tag")
async def create_tag(
    body: tags.TagCreate,
    key: WriteKey,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await idempotent(
        runtime,
        key,
        scope="tags.create",
        idempotency_key=idempotency_key,
        request=body.model_dump(mode="json"),
        model=Tag,
        work=lambda conn: tags.create_tag(
            conn=conn, organization_id=key.organization_id, data=body
        ),
    )


@router.get("/{tag_id}", response_model=Tag, responses=READ_ONE, summary="Get a tag")
async def get_tag(tag_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: tags.get_tag(conn=conn, organization_id=key.organization_id, tag_id=tag_id),
    )


@router.patch("/{tag_id}", response_model=Tag, responses=WRITE, summary="Update a tag")
async def update_tag(tag_id: UUID, body: tags.TagUpdate, key: WriteKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: tags.update_tag(
            conn=conn, organization_id=key.organization_id, tag_id=tag_id, data=body
        ),
    )


@router.delete("/{tag_id}", status_code=204, responses=WRITE, summary="Delete a tag")
async def delete_tag(tag_id: UUID, key: WriteKey, runtime: RuntimeDep) -> Response:
    await in_tx(
        runtime,
        key,
        lambda conn: tags.delete_tag(conn=conn, organization_id=key.organization_id, tag_id=tag_id),
    )
    return Response(status_code=204)
