"""One entry per table the SPA can reach: how to make a row of an organization, and
what a forged insert into another organization looks like. A table without an
entry fails the isolation suite, so every new table must add one here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from shared.db import Connection
from tests.security.world import World
from tests.support import member

MakeRow = Callable[[Connection, World, UUID], Awaitable[UUID]]
Forge = Callable[[World, UUID], dict[str, Any]]


@dataclass(frozen=True)
class TenantTable:
    make: MakeRow  # insert a row of the organization, as the owner role; returns its key
    forge: Forge  # the values of a row of that organization an attacker tries to insert
    scope: str | None = "organization_id"  # the column naming the organization, if any
    key: str = "id"
    touch: str = "organization_id"  # a column "updated" to itself in update attempts


async def _organization(conn: Connection, world: World, org: UUID) -> UUID:
    return org


async def _membership(conn: Connection, world: World, org: UUID) -> UUID:
    user = await member(conn, org, "agent")
    key: UUID = await conn.fetchval(
        "select id from public.organization_members where user_id = $1", user
    )
    return key


async def _profile(conn: Connection, world: World, org: UUID) -> UUID:
    return await member(conn, org, "agent")


async def _api_key(conn: Connection, world: World, org: UUID) -> UUID:
    key: UUID = await conn.fetchval(
        "insert into public.api_keys (organization_id, name, prefix, scopes)"
        " values ($1, 'k', 'cg_test', '{read}') returning id",
        org,
    )
    await conn.execute(
        "insert into private.api_key_hashes (api_key_id, hash) values ($1, $2)",
        key,
        uuid4().bytes,
    )
    return key


TABLES: dict[str, TenantTable] = {
    "public.organizations": TenantTable(
        make=_organization,
        forge=lambda w, org: {"name": "Forged", "slug": f"forged-{uuid4().hex[:8]}"},
        scope=None,
        touch="name",
    ),
    "public.organization_members": TenantTable(
        make=_membership,
        # the classic escalation: make yourself owner of someone else's organization
        forge=lambda w, org: {"organization_id": org, "user_id": w.agent_b, "role": "owner"},
    ),
    "public.profiles": TenantTable(
        make=_profile,
        forge=lambda w, org: {"id": w.owner_a, "full_name": "Forged"},
        scope=None,
        touch="full_name",
    ),
    "public.api_keys": TenantTable(
        make=_api_key,
        forge=lambda w, org: {
            "organization_id": org,
            "name": "forged",
            "prefix": "cg_forged",
            "scopes": ["read", "write"],
        },
    ),
}
