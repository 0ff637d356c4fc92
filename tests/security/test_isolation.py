"""No one outside an organization can read or write its rows, through any path.

For every table the SPA can reach, a member of org B (agent and admin), an API
key of org B and an anonymous caller try to read org A's rows, insert rows
into org A, update and delete org A's rows, and move org B's rows into org A.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import asyncpg
import pytest
import pytest_asyncio

from shared.auth import Principal
from shared.db import Connection
from shared.runtime import Runtime
from tests.security.registry import TABLES, TenantTable
from tests.security.world import World, build_world
from tests.support import as_, issue_key, module_runtime_fixtures

# One world for the module, built once in a database of its own, and one warm pool:
# every test makes its own rows of A and B and checks them by key, so none sees another's.
pytestmark = pytest.mark.asyncio(loop_scope="module")


runtime, db = module_runtime_fixtures()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(db: Connection, runtime: Runtime) -> World:
    return await build_world(db, runtime)


PRINCIPALS = ["agent_b", "admin_b", "api_key_b", "anon"]
REFUSED = {"42501", "CG403", "CG422"}  # RLS / privilege, our own refusals


async def _rows(conn: Connection, world: World, spec: TenantTable, org: UUID) -> list[Any]:
    return [await spec.make(conn, world, org)]


async def _snapshot(conn: Connection, table: str, spec: TenantTable, keys: list[Any]) -> Any:
    rows = await conn.fetch(
        f"select to_jsonb(t) as row from {table} t where {spec.key} = any($1) order by {spec.key}",
        keys,
    )
    return [r["row"] for r in rows]


async def _refused(runtime: Runtime, who: Principal, sql: str, *args: Any) -> str | None:
    """The SQLSTATE of the refusal, or None when the statement went through."""
    try:
        await as_(runtime, who, sql, *args)
    except asyncpg.PostgresError as exc:
        return exc.sqlstate
    return None


@pytest.mark.parametrize("who", PRINCIPALS)
@pytest.mark.parametrize("table", sorted(TABLES))
async def test_no_path_from_b_into_a(
    table: str, who: str, world: World, db: Connection, runtime: Runtime
):
    spec = TABLES[table]
    attacker = world.principals()[who]
    a_rows = await _rows(db, world, spec, world.org_a)
    b_rows = await _rows(db, world, spec, world.org_b)
    before_a = await _snapshot(db, table, spec, a_rows)
    before_b = await _snapshot(db, table, spec, b_rows)

    # read: nothing of A; B's own rows are visible to B's members (so the check is not vacuous)
    seen = await as_(
        runtime, attacker, f"select {spec.key} from {table} where {spec.key} = any($1)", a_rows
    )
    assert seen == [], f"{who} read org A's {table}"
    own = await as_(
        runtime, attacker, f"select {spec.key} from {table} where {spec.key} = any($1)", b_rows
    )
    assert bool(own) == (who in spec.readers), f"{who} and its own {table}"

    # insert a row naming org A
    values = await spec.forge(db, world, world.org_a)
    columns = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    state = await _refused(
        runtime, attacker, f"insert into {table} ({columns}) values ({params})", *values.values()
    )
    assert state in REFUSED, f"{who} inserted into org A's {table} (sqlstate {state})"

    # update and delete A's rows: nothing matches
    touched = await as_(
        runtime,
        attacker,
        f"update {table} set {spec.touch} = {spec.touch} where {spec.key} = any($1) returning 1",
        a_rows,
    )
    assert touched == [], f"{who} updated org A's {table}"
    deleted = await as_(
        runtime, attacker, f"delete from {table} where {spec.key} = any($1) returning 1", a_rows
    )
    assert deleted == [], f"{who} deleted org A's {table}"

    # move B's rows into A
    if spec.scope is not None:
        state = await _refused(
            runtime,
            attacker,
            f"update {table} set {spec.scope} = $1 where {spec.key} = any($2) returning 1",
            world.org_a,
            b_rows,
        )
        moved = await _snapshot(db, table, spec, b_rows)
        assert moved == before_b, f"{who} moved a {table} row from B to A (sqlstate {state})"

    assert await _snapshot(db, table, spec, a_rows) == before_a
    assert await _snapshot(db, table, spec, b_rows) == before_b


async def test_a_jwt_cannot_claim_to_be_an_api_key(world: World, runtime: Runtime, db: Connection):
    """Claims naming an API key and org A, as PostgREST would run them, open nothing."""
    async with db.transaction():
        await db.execute(
            "select set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', $1, true)",
            json.dumps(
                {
                    "role": "authenticated",
                    "sub": str(world.agent_b),
                    "api_key": {
                        "id": str(world.key_b.key_id),
                        "organization_id": str(world.org_a),
                        "scopes": ["read", "write"],
                    },
                    "organization_id": str(world.org_a),
                }
            ),
        )
        assert await db.fetch("select * from public.organizations where id = $1", world.org_a) == []
        orgs = await db.fetch("select organization_id from app.org_ids() organization_id")
        assert [r["organization_id"] for r in orgs] == [world.org_b]


async def test_a_revoked_key_loses_access_inside_the_database_too(
    world: World, runtime: Runtime, db: Connection
):
    _, key = await issue_key(runtime, world.org_b, world.owner_b, ["read", "write"])  # its own
    assert await as_(runtime, key, "select id from public.organizations") != []
    await db.execute("update public.api_keys set revoked_at = now() where id = $1", key.key_id)
    rows = await as_(runtime, key, "select id from public.organizations")
    assert rows == []
