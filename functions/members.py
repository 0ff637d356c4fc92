"""/functions/v1/members — invite people, change their role, remove them.

POST   /            {organization_id, email, role}   admin+ (owner role: owners only)
GET    /?organization_id=…                           any member
PATCH  /{user_id}   {organization_id, role}          admin+ (owners: owners only)
DELETE /{user_id}?organization_id=…                  admin+, or yourself to leave
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, EmailStr

from shared import members
from shared.supabase_admin import invite_user
from shared.web import CurrentUser, RuntimeDep, function_app

router = APIRouter()


class Invite(BaseModel):
    organization_id: UUID
    email: EmailStr
    role: members.Role = "agent"


class RoleChange(BaseModel):
    organization_id: UUID
    role: members.Role


@router.post("/", status_code=201)
async def invite(body: Invite, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    db = runtime.db
    # Check the caller's rights before anyone gets an e-mail.
    async with db.user_tx(user) as conn:
        caller = await members.require_role(
            conn=conn, organization_id=body.organization_id, at_least="admin"
        )
        members.check_owner_rule(caller, body.role)
    async with db.service_tx() as conn:
        user_id = await members.find_auth_user(conn=conn, email=body.email)
    invited = user_id is None
    if user_id is None:
        user_id = await invite_user(
            runtime, email=body.email, data={"organization_id": str(body.organization_id)}
        )
    async with db.user_tx(user) as conn:
        member = await members.add_member(
            conn=conn, organization_id=body.organization_id, user_id=user_id, role=body.role
        )
    return {**member, "invited": invited}


@router.get("/")
async def list_members(
    organization_id: UUID, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        await members.require_role(conn=conn, organization_id=organization_id, at_least="agent")
        return {"data": await members.list_members(conn=conn, organization_id=organization_id)}


@router.patch("/{user_id}")
async def change_role(
    user_id: UUID, body: RoleChange, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await members.change_role(
            conn=conn, organization_id=body.organization_id, user_id=user_id, role=body.role
        )


@router.delete("/{user_id}", status_code=204)
async def remove(
    user_id: UUID, organization_id: UUID, user: CurrentUser, runtime: RuntimeDep
) -> Response:
    async with runtime.db.user_tx(user) as conn:
        await members.remove_member(conn=conn, organization_id=organization_id, user_id=user_id)
    return Response(status_code=204)


app = function_app(router, name="members")
