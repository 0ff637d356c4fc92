"""Nothing a client sets or edits feeds identity: the API key of a transaction, a
revoked key, an organization's slug; and a key's scopes mean what they say."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from shared import api_keys
from shared.db import Connection
from shared.errors import Unauthorized
from shared.runtime import Runtime
from tests.security.world import World
from tests.support import as_, issue_key, make_contact, principal
from tests.support_crm import make_tag

# ---- the API key of a transaction -------------------------------------------------------------


@pytest.mark.parametrize("who", ["member", "nobody"])
async def test_setting_the_key_as_authenticated_gives_no_key_rights(
    db: Connection, runtime: Runtime, world: World, who: str
):
    _, key_a = await issue_key(runtime, world.org_a, world.owner_a, ["read", "write"])
    contact_a = await make_contact(db, world.org_a)
    claims: dict[str, Any] = {"role": "authenticated"}
    if who == "member":
        claims["sub"] = str(world.agent_b)
    async with db.transaction():
        await db.execute(
            "select set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', $1, true),"
            " set_config('connectgain.api_key_id', $2, true)",
            json.dumps(claims),
            str(key_a.key_id),
        )
        assert await db.fetchval("select app.api_key_id()") is None
        orgs = [r[0] for r in await db.fetch("select app.org_ids()")]
        assert world.org_a not in orgs
        assert await db.fetch("select id from contacts where id = $1", contact_a) == []
        updated = await db.fetch(
            "update contacts set name = 'x' where id = $1 returning 1", contact_a
        )
        assert updated == []
        await db.execute("reset role")


@pytest.mark.parametrize(
    "sql",
    [
        "select private.bind_api_key($1)",
        "insert into private.api_key_transactions (api_key_id) values ($1)",
    ],
)
async def test_an_api_role_cannot_bind_a_key_itself(
    db: Connection, runtime: Runtime, world: World, sql: str
):
    _, key_a = await issue_key(runtime, world.org_a, world.owner_a, ["read"])
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_(runtime, principal(world.agent_b), sql, key_a.key_id)


async def test_a_key_is_bound_to_its_own_transaction_only(
    db: Connection, runtime: Runtime, world: World
):
    async with runtime.db.user_tx(world.key_b) as conn:
        assert await conn.fetchval("select app.api_key_id()") == world.key_b.key_id
        await conn.execute("savepoint inner_work")  # a subtransaction keeps the key
        assert await conn.fetchval("select app.api_key_id()") == world.key_b.key_id
    with pytest.raises(RuntimeError):
        async with runtime.db.user_tx(world.key_b):
            raise RuntimeError("rolled back")
    # forgotten at commit, gone with a rollback: no row outlives its transaction
    assert await db.fetchval("select count(*) from private.api_key_transactions") == 0
    rows = await as_(runtime, principal(world.agent_b), "select app.api_key_id()")
    assert rows[0][0] is None


# ---- revoked keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    ["revoked_at = null", "revoked_at = now() + interval '1 year'", "prefix = 'cg_other'"],
)
async def test_an_admin_cannot_unrevoke_or_rewrite_a_revoked_key(
    db: Connection, runtime: Runtime, world: World, change: str
):
    key, principal_b = await issue_key(runtime, world.org_b, world.owner_b, ["read"])
    async with runtime.db.user_tx(principal(world.owner_b)) as conn:
        revoked = await api_keys.revoke_api_key(conn=conn, key_id=principal_b.key_id)
    with pytest.raises(asyncpg.PostgresError) as refused:
        await as_(
            runtime,
            principal(world.owner_b),
            f"update api_keys set {change} where id = $1",
            principal_b.key_id,
        )
    assert refused.value.sqlstate == "CG422"
    after = await db.fetchrow(
        "select revoked_at, prefix from api_keys where id = $1", principal_b.key_id
    )
    assert (after["revoked_at"], after["prefix"]) == (revoked["revoked_at"], revoked["prefix"])
    with pytest.raises(Unauthorized):
        await api_keys.authenticate(runtime.db, key)
    # a live key can still be renamed
    renamed = await as_(
        runtime,
        principal(world.owner_b),
        "update api_keys set name = 'renamed' where id = $1 returning name",
        world.key_b.key_id,
    )
    assert [r["name"] for r in renamed] == ["renamed"]


# ---- slugs ----------------------------------------------------------------------------------


async def test_a_slug_update_answers_the_same_whether_the_slug_is_taken_or_not(
    db: Connection, runtime: Runtime, world: World
):
    slug_a = await db.fetchval("select slug from organizations where id = $1", world.org_a)
    before = await db.fetchval("select slug from organizations where id = $1", world.org_b)
    answers = set()
    for wanted in (slug_a, "nobody-has-this-slug", "Not A Slug!"):
        with pytest.raises(asyncpg.PostgresError) as refused:
            await as_(
                runtime,
                principal(world.owner_b),
                "update organizations set slug = $2 where id = $1",
                world.org_b,
                wanted,
            )
        answers.add((refused.value.sqlstate, str(refused.value)))
    assert len(answers) == 1 and answers.pop()[0] == "CG422"
    assert await db.fetchval("select slug from organizations where id = $1", world.org_b) == before
    renamed = await as_(
        runtime,
        principal(world.owner_b),
        "update organizations set name = 'Org B, renamed' where id = $1 returning slug",
        world.org_b,
    )
    assert [r["slug"] for r in renamed] == [before]


# ---- scopes ---------------------------------------------------------------------------------


async def _configuration(db: Connection, org: UUID) -> dict[str, Any]:
    """A pipeline (not the default, which cannot go), its stage and a custom field."""
    pipeline: UUID = await db.fetchval(
        "insert into pipelines (organization_id, name) values ($1, 'Extra') returning id", org
    )
    stage: UUID = await db.fetchval(
        "insert into stages (organization_id, pipeline_id, name) values ($1, $2, 'Only')"
        " returning id",
        org,
        pipeline,
    )
    field: UUID = await db.fetchval(
        "insert into custom_field_definitions (organization_id, entity, key, label, type)"
        " values ($1, 'contact', 'tier', 'Tier', 'text') returning id",
        org,
    )
    return {"org": org, "pipeline": pipeline, "stage": stage, "field": field}


# (statement, the configuration rows it names, in $1, $2 … order)
CONFIGURE = [
    ("insert into pipelines (organization_id, name) values ($1, 'By key')", ["org"]),
    ("update pipelines set name = 'Renamed' where id = $1", ["pipeline"]),
    ("delete from pipelines where id = $1", ["pipeline"]),
    (
        "insert into stages (organization_id, pipeline_id, name) values ($1, $2, 'By key')",
        ["org", "pipeline"],
    ),
    ("update stages set name = 'Renamed' where id = $1", ["stage"]),
    ("delete from stages where id = $1", ["stage"]),
    (
        "insert into custom_field_definitions (organization_id, entity, key, label, type)"
        " values ($1, 'deal', 'by_key', 'By key', 'text')",
        ["org"],
    ),
    ("update custom_field_definitions set label = 'Renamed' where id = $1", ["field"]),
    ("delete from custom_field_definitions where id = $1", ["field"]),
]


async def _snapshot(db: Connection, org: UUID) -> list[Any]:
    return [
        await db.fetchval(
            f"select coalesce(jsonb_agg(t order by t.id), '[]') from {table} t"
            " where organization_id = $1",
            org,
        )
        for table in ("pipelines", "stages", "custom_field_definitions")
    ]


@pytest.mark.parametrize(("sql", "names"), CONFIGURE)
async def test_a_write_key_does_not_configure_pipelines_or_custom_fields(
    db: Connection, runtime: Runtime, world: World, sql: str, names: list[str]
):
    config = await _configuration(db, world.org_b)
    before = await _snapshot(db, world.org_b)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_(runtime, world.key_b, sql, *[config[n] for n in names])
    assert await _snapshot(db, world.org_b) == before


@pytest.mark.parametrize(("sql", "names"), CONFIGURE)
async def test_a_manager_configures_what_a_write_key_cannot(
    db: Connection, runtime: Runtime, world: World, sql: str, names: list[str]
):
    config = await _configuration(db, world.org_b)
    before = await _snapshot(db, world.org_b)
    await db.execute(
        "update organization_members set role = 'manager' where user_id = $1", world.agent_b
    )
    await as_(runtime, principal(world.agent_b), sql, *[config[n] for n in names])
    assert await _snapshot(db, world.org_b) != before


async def test_a_write_key_keeps_its_manager_rights_over_records(
    db: Connection, runtime: Runtime, world: World
):
    contact = await make_contact(db, world.org_b)
    tag = await make_tag(db, world.org_b)
    key = world.key_b
    assert await as_(
        runtime, key, "update tags set color = '#000000' where id = $1 returning 1", tag
    )
    assert await as_(runtime, key, "delete from contacts where id = $1 returning 1", contact)
    _, reader = await issue_key(runtime, world.org_b, world.owner_b, ["read"])
    assert await as_(runtime, reader, "delete from tags where id = $1 returning 1", tag) == []
