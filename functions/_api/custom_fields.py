"""/v1/custom-fields — read-only: the organization's custom field definitions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from functions._api.common import READ, ReadKey
from functions._api.schemas import CustomFieldDefinition
from shared.web import RuntimeDep

router = APIRouter(prefix="/custom-fields", tags=["custom fields"])


@router.get(
    "",
    response_model=list[CustomFieldDefinition],
    responses=READ,
    summary="List custom field definitions",
)
async def list_custom_fields(
    key: ReadKey,
    runtime: RuntimeDep,
    entity: Annotated[Literal["contact", "company", "deal"] | None, Query()] = None,
) -> Any:
    async with runtime.db.user_tx(key) as conn:
        rows = await conn.fetch(
            "select id, entity::text as entity, key, label, type::text as type, options,"
            " required, position from public.custom_field_definitions"
            " where organization_id = $1 and ($2::public.custom_field_entity is null"
            " or entity = $2) order by entity, position, key",
            key.organization_id,
            entity,
        )
    return [dict(r) for r in rows]
