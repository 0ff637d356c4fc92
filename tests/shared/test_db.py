from __future__ import annotations

import json
from uuid import uuid4

import asyncpg
import pytest

from shared.auth import AnonPrincipal, UserPrincipal
from shared.db import Connection, fetch_found
from shared.errors import NotFound
from shared.runtime import Runtime


async def test_user_tx_publishes_the_callers_claims_like_postgrest(runtime: Runtime):
    user_id = uuid4()
    claims = {"sub": str(user_id), "role": "authenticated", "email": "ana@example.com"}
    principal = UserPrincipal(user_id=user_id, claims=claims)
    async with runtime.db.user_tx(principal) as conn:
        row = await conn.fetchrow(
            "select auth.uid() as uid, auth.jwt() as jwt, auth.role() as role,"
            " auth.email() as email, current_user as db_role"
        )
    assert row["uid"] == user_id
    assert row["jwt"] == claims
    assert row["role"] == "authenticated"
    assert row["email"] == "ana@example.com"
    assert row["db_role"] == "authenticated"


async def test_user_tx_settings_end_with_the_transaction(runtime: Runtime):
    principal = UserPrincipal(
        user_id=uuid4(), claims={"sub": str(uuid4()), "role": "authenticated"}
    )
    async with runtime.db.user_tx(principal):
        pass
    async with runtime.db.pool.acquire() as conn:
        row = await conn.fetchrow("select auth.uid() as uid, current_user as db_role")
    assert row["uid"] is None
    assert row["db_role"] == "postgres"


async def test_legacy_claim_keys_are_read_as_supabase_reads_them(db: Connection):
    sub = uuid4()
    async with db.transaction():
        await db.execute("select set_config('request.jwt.claim.sub', $1, true)", str(sub))
        assert await db.fetchval("select auth.uid()") == sub


async def test_anon_cannot_read_auth_users(runtime: Runtime):
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with runtime.db.user_tx(AnonPrincipal()) as conn:
            await conn.fetch("select * from auth.users")


async def test_json_columns_round_trip_as_python_values(db: Connection):
    value = {"a": [1, 2], "b": None}
    assert await db.fetchval("select $1::jsonb", value) == value
    assert json.loads(await db.fetchval("select ($1::jsonb)::text", value)) == value


async def test_fetch_found_is_the_row_or_a_not_found_naming_it(db: Connection):
    sql = "select n, n * 2 as twice from generate_series(1, 3) n where n = $1"
    assert await fetch_found(db, "No such number", sql, 2) == {"n": 2, "twice": 4}
    with pytest.raises(NotFound, match="No such number"):
        await fetch_found(db, "No such number", sql, 7)
