"""Adding and removing tags on a taggable record (contacts, deals, conversations)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from functions._api.common import WRITE, IdempotencyKey, WriteKey, idempotent, in_tx
from shared.crm import records, tags
from shared.crm.entities import Entity
from shared.crm.inputs import Strict, TagRefs
from shared.db import Connection
from shared.web import RuntimeDep


class TagsToAdd(Strict):
    tags: TagRefs = Field(min_length=1, description="Tag names (created if new) or ids")


def add_tag_routes(router: APIRouter, entity: Entity, model: type[BaseModel]) -> None:
    """POST /{id}/tags and DELETE /{id}/tags/{tag} on `router`, answering the record."""
    name = entity.name

    async def reread(conn: Connection, organization_id: UUID, record_id: UUID) -> dict[str, Any]:
        return await records.get_record(
            conn=conn, entity=entity, organization_id=organization_id, record_id=record_id
        )

    @router.post(
        "/{record_id}/tags",
        status_code=200,
        response_model=model,
        responses=WRITE,
        summary=f"Tag a {name}",
        operation_id=f"add_{name}_tags",
    )
    async def add(
        record_id: UUID,
        body: TagsToAdd,
        key: WriteKey,
        runtime: RuntimeDep,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        async def work(conn: Connection) -> dict[str, Any]:
            await tags.add_tags(
                conn=conn,
                organization_id=key.organization_id,
                entity=entity,
                record_id=record_id,
                refs=body.tags,
            )
            return await reread(conn, key.organization_id, record_id)

        return await idempotent(
            runtime,
            key,
            scope=f"{name}.tags.add",
            idempotency_key=idempotency_key,
            request=[str(record_id), body.model_dump(mode="json")],
            model=model,
            work=work,
            status=200,
        )

    @router.delete(
        "/{record_id}/tags/{tag}",
        response_model=model,
        responses=WRITE,
        summary=f"Untag a {name}",
        operation_id=f"remove_{name}_tag",
    )
    async def remove(record_id: UUID, tag: str, key: WriteKey, runtime: RuntimeDep) -> Any:
        async def work(conn: Connection) -> dict[str, Any]:
            await tags.remove_tag(
                conn=conn,
                organization_id=key.organization_id,
                entity=entity,
                record_id=record_id,
                ref=tag,
            )
            return await reread(conn, key.organization_id, record_id)

        return await in_tx(runtime, key, work)
