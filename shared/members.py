"""Organization members and their roles: owner > admin > manager > agent.

The policies already refuse what a role may not do; these functions check the
same rules first so the caller gets a 403/404/409 that says why, instead of a
silent "0 rows". Every function runs inside the caller's RLS transaction.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from shared.db import Connection, fetch_found
from shared.errors import Forbidden, NotFound

Role = Literal["agent", "manager", "admin", "owner"]
RANK: dict[str, int] = {"agent": 0, "manager": 1, "admin": 2, "owner": 3}

# Who a member is comes from Supabase Auth (app.member_directory reads auth.users),
# never from their profile, which they may edit; only the avatar comes from there.
MEMBER_COLUMNS = """
  m.user_id, m.organization_id, m.role::text as role, m.created_at,
  d.email, d.full_name, p.avatar_url
"""
MEMBERS_OF = """
  public.organization_members m
  left join app.member_directory($1) d on d.user_id = m.user_id  -- $1: the organization
  left join public.profiles p on p.id = m.user_id
"""


async def caller_role(*, conn: Connection, organization_id: UUID) -> str | None:
    role: str | None = await conn.fetchval(
        "select role::text from public.organization_members"
        " where organization_id = $1 and user_id = auth.uid()",
        organization_id,
    )
    return role


async def require_role(*, conn: Connection, organization_id: UUID, at_least: Role) -> str:
    role = await caller_role(conn=conn, organization_id=organization_id)
    if role is None:
        raise NotFound("No such organization")
    if RANK[role] < RANK[at_least]:
        raise Forbidden(f"This needs the {at_least} role or higher; you are {role}")
    return role


def check_owner_rule(caller: str, *roles: str) -> None:
    if "owner" in roles and caller != "owner":
        raise Forbidden("Only owners can grant, change or remove the owner role")


async def get_member(*, conn: Connection, organization_id: UUID, user_id: UUID) -> dict[str, Any]:
    return await fetch_found(
        conn,
        "No such member",
        f"select {MEMBER_COLUMNS} from {MEMBERS_OF}"
        " where m.organization_id = $1 and m.user_id = $2",
        organization_id,
        user_id,
    )


async def list_members(*, conn: Connection, organization_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"select {MEMBER_COLUMNS} from {MEMBERS_OF}"
        " where m.organization_id = $1 order by m.created_at",
        organization_id,
    )
    return [dict(r) for r in rows]


async def change_role(
    *, conn: Connection, organization_id: UUID, user_id: UUID, role: Role
) -> dict[str, Any]:
    caller = await require_role(conn=conn, organization_id=organization_id, at_least="admin")
    member = await get_member(conn=conn, organization_id=organization_id, user_id=user_id)
    check_owner_rule(caller, member["role"], role)
    await conn.execute(
        "update public.organization_members set role = $3"
        " where organization_id = $1 and user_id = $2",
        organization_id,
        user_id,
        role,
    )
    return {**member, "role": role}


async def remove_member(*, conn: Connection, organization_id: UUID, user_id: UUID) -> None:
    """Admins remove members (owners also owners); anyone may leave."""
    leaving = user_id == await conn.fetchval("select auth.uid()")
    caller = await require_role(
        conn=conn, organization_id=organization_id, at_least="agent" if leaving else "admin"
    )
    member = await get_member(conn=conn, organization_id=organization_id, user_id=user_id)
    if not leaving:
        check_owner_rule(caller, member["role"])
    await conn.execute(
        "delete from public.organization_members where organization_id = $1 and user_id = $2",
        organization_id,
        user_id,
    )
