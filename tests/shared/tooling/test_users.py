from __future__ import annotations

from uuid import UUID

from shared.auth import verify_access_token
from shared.db import Connection
from shared.runtime import Runtime
from shared.settings import Settings
from shared.tooling.users import create_local_user


async def test_user_create_makes_an_owner_with_a_working_token(
    settings: Settings, runtime: Runtime, db: Connection
):
    created = await create_local_user(settings, email="Ana@Example.com", org_name="Acme", role=None)
    user = await verify_access_token(created["access_token"], settings=settings, jwks=runtime.jwks)
    assert str(user.user_id) == created["user_id"]
    assert user.claims["email"] == "ana@example.com"
    role = await db.fetchval(
        "select role::text from organization_members where organization_id = $1 and user_id = $2",
        UUID(created["organization_id"]),
        user.user_id,
    )
    assert role == "owner"


async def test_user_create_joins_an_existing_organization_with_the_role(
    settings: Settings, db: Connection
):
    first = await create_local_user(settings, email="ana@example.com", org_name="Acme", role=None)
    second = await create_local_user(
        settings, email="bo@example.com", org_name="Acme", role="admin"
    )
    assert second["organization_id"] == first["organization_id"]
    role = await db.fetchval(
        "select role::text from organization_members where user_id = $1", UUID(second["user_id"])
    )
    assert role == "admin"


async def test_user_create_again_reuses_the_account(settings: Settings, db: Connection):
    first = await create_local_user(settings, email="ana@example.com", org_name="Acme", role=None)
    again = await create_local_user(
        settings, email="ana@example.com", org_name="Acme", role="owner"
    )
    assert again["user_id"] == first["user_id"]
    assert await db.fetchval("select count(*) from auth.users") == 1
