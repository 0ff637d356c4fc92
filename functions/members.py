"""/functions/v1/members — invite people, change their role, remove them.

POST   /                     {organization_id, email, role}  admin+ (owner role: owners only)
GET    /?organization_id=…                                   any member
PATCH  /{user_id}            {organization_id, role}         admin+ (owners: owners only)
DELETE /{user_id}?organization_id=…                          admin+, or yourself to leave
POST   /availability         {organization_id, availability}  yourself: online, away, offline
PUT    /{user_id}/capacity   {organization_id, capacity}      manager+: open conversations
                                                             balanced assignment gives at most
PUT    /assignment           {organization_id, reassign_unavailable}  admin+: off, round_robin
                                                             or balanced reassignment of the
                                                             open conversations of a member who
                                                             goes offline or leaves
GET    /invitations?organization_id=…                        admin+: open invitations
DELETE /invitations/{invitation_id}                          admin+ (owner invitations: owners)
POST   /invitations/accept   {token}                         the invitee, signed in as the
                                                             invited address

POST / invites; it never adds anyone. The person joins only by accepting with
the token from the e-mail Supabase Auth sends. Whether the address has an
account changes nothing in the answer.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, EmailStr, Field

from shared import invitations, members
from shared.automation import assignment
from shared.supabase_admin import send_invitation_email
from shared.web import CurrentUser, RuntimeDep, function_app

router = APIRouter()


class Invite(BaseModel):
    organization_id: UUID
    email: EmailStr
    role: members.Role = "agent"


class RoleChange(BaseModel):
    organization_id: UUID
    role: members.Role


class AvailabilityChange(BaseModel):
    organization_id: UUID
    availability: assignment.Availability


class CapacityChange(BaseModel):
    organization_id: UUID
    capacity: int | None = Field(ge=0, le=10000, description="null: no limit")


class ReassignmentChange(BaseModel):
    organization_id: UUID
    reassign_unavailable: Literal["off", "round_robin", "balanced"]


class Acceptance(BaseModel):
    token: str = Field(pattern=invitations.TOKEN_PATTERN)


@router.post("/", status_code=201)
async def invite(body: Invite, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    db, settings = runtime.db, runtime.settings
    email = body.email.lower()
    # Every refusal happens before anyone gets an e-mail.
    async with db.user_tx(user) as conn:
        await invitations.check_can_invite(
            conn=conn,
            organization_id=body.organization_id,
            email=email,
            role=body.role,
            resend_seconds=settings.invitation_resend_seconds,
        )
    token, digest = invitations.new_token()
    # Sent first: if Supabase Auth fails, nothing is stored and the old link still works.
    await send_invitation_email(
        runtime, email=email, redirect_to=invitations.accept_link(settings, token)
    )
    async with db.user_tx(user) as conn:
        return await invitations.create(
            conn=conn,
            organization_id=body.organization_id,
            email=email,
            role=body.role,
            token_digest=digest,
            valid_for=timedelta(hours=settings.invitation_ttl_hours),
        )


@router.get("/")
async def list_members(
    organization_id: UUID, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        await members.require_role(conn=conn, organization_id=organization_id, at_least="agent")
        return {"data": await members.list_members(conn=conn, organization_id=organization_id)}


@router.get("/invitations")
async def list_invitations(
    organization_id: UUID, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return {"data": await invitations.list_open(conn=conn, organization_id=organization_id)}


@router.delete("/invitations/{invitation_id}", status_code=204)
async def revoke_invitation(
    invitation_id: UUID, user: CurrentUser, runtime: RuntimeDep
) -> Response:
    async with runtime.db.user_tx(user) as conn:
        await invitations.revoke(conn=conn, invitation_id=invitation_id)
    return Response(status_code=204)


@router.post("/invitations/accept")
async def accept_invitation(
    body: Acceptance, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await invitations.accept(conn=conn, token=body.token)


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


@router.post("/availability")
async def set_availability(
    body: AvailabilityChange, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await assignment.set_availability(
            conn=conn, organization_id=body.organization_id, availability=body.availability
        )


@router.put("/assignment")
async def set_reassignment(
    body: ReassignmentChange, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        await members.require_role(
            conn=conn, organization_id=body.organization_id, at_least="admin"
        )
        return await assignment.set_reassignment(
            conn=conn, organization_id=body.organization_id, reassign=body.reassign_unavailable
        )


@router.put("/{user_id}/capacity")
async def set_capacity(
    user_id: UUID, body: CapacityChange, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        await members.require_role(
            conn=conn, organization_id=body.organization_id, at_least="manager"
        )
        return await assignment.set_capacity(
            conn=conn, organization_id=body.organization_id, user_id=user_id, capacity=body.capacity
        )


app = function_app(router, name="members")
