"""/functions/v1/api-keys — issue, list and revoke cg_ keys of an organization.

POST   /            {organization_id, name, scopes}   admin+; the key is in this answer only
GET    /?organization_id=…                            any member; never the key or its hash
DELETE /{key_id}                                      admin+; refused everywhere at once
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, Field

from shared import api_keys
from shared.web import CurrentUser, RuntimeDep, function_app

router = APIRouter()


class NewKey(BaseModel):
    organization_id: UUID
    name: str = Field(min_length=1, max_length=100)
    scopes: list[api_keys.Scope] = Field(
        default=["read"], min_length=1, description=api_keys.SCOPES_DOC
    )


@router.post("/", status_code=201)
async def create(body: NewKey, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await api_keys.create_api_key(
            conn=conn, organization_id=body.organization_id, name=body.name, scopes=body.scopes
        )


@router.get("/")
async def list_keys(
    organization_id: UUID, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return {"data": await api_keys.list_api_keys(conn=conn, organization_id=organization_id)}


@router.delete("/{key_id}")
async def revoke(key_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await api_keys.revoke_api_key(conn=conn, key_id=key_id)


app = function_app(router, name="api-keys")
