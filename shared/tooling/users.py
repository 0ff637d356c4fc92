"""`connectgain user create`: a local person with an organization and a working access token."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from shared.auth import UserPrincipal, mint_access_token
from shared.db import Database
from shared.members import Role
from shared.settings import Settings
from shared.tooling.cluster import ClusterError
from shared.tooling.migrate import is_hosted_supabase


async def create_local_user(
    settings: Settings, *, email: str, org_name: str | None, role: Role | None
) -> dict[str, Any]:
    db = await Database.connect(settings)
    try:
        async with db.service_tx() as conn:
            if await is_hosted_supabase(conn):
                raise ClusterError("Users of a hosted project are created by Supabase Auth")
            user_id: UUID = await conn.fetchval(
                "insert into auth.users (email, email_confirmed_at) values (lower($1), now())"
                " on conflict (email) do update set updated_at = now() returning id",
                email,
            )
        token = mint_access_token(settings, user_id=user_id, email=email.lower())
        principal = UserPrincipal(
            user_id=user_id,
            claims={"sub": str(user_id), "role": "authenticated", "email": email.lower()},
        )
        organization_id = await _create_or_join(db, principal, org_name or "My Organization", role)
    except asyncpg.PostgresError as exc:
        raise ClusterError(f"Could not create the user: {exc}") from exc
    finally:
        await db.close()
    return {"user_id": str(user_id), "organization_id": str(organization_id), "access_token": token}


async def _create_or_join(
    db: Database, principal: UserPrincipal, org_name: str, role: Role | None
) -> UUID:
    async with db.service_tx() as conn:
        existing: UUID | None = await conn.fetchval(
            "select id from public.organizations where name = $1 order by created_at limit 1",
            org_name,
        )
        if existing is not None:
            await conn.execute(
                "insert into public.organization_members (organization_id, user_id, role)"
                " values ($1, $2, $3) on conflict (organization_id, user_id)"
                " do update set role = excluded.role",
                existing,
                principal.user_id,
                role or "agent",
            )
            return existing
    # A new organization goes through the same RPC the SPA calls; its creator is
    # its owner whatever --role says (an organization always keeps an owner).
    async with db.user_tx(principal) as conn:
        created: UUID = await conn.fetchval("select public.create_organization($1)", org_name)
    return created
