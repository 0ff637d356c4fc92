"""The tenancy schema's own rules: create_organization, owners, profiles, secrets."""

from __future__ import annotations

import re

import asyncpg
import pytest

from shared.auth import AnonPrincipal
from shared.db import Connection
from shared.runtime import Runtime
from tests.support import issue_key, make_conversation, make_org, make_user, member, principal


async def test_create_organization_makes_the_caller_owner_with_a_unique_slug(
    db: Connection, runtime: Runtime
):
    ana = await make_user(db)
    first = await make_org(db, ana, "Acme Sales!")
    second = await make_org(db, ana, "Acme Sales!")
    slugs = await db.fetch(
        "select slug from organizations where id = any($1) order by created_at", [first, second]
    )
    # the name's slug and a random part, always: a slug never tells that another exists
    assert all(re.fullmatch(r"acme-sales-[0-9a-f]{8}", r["slug"]) for r in slugs)
    assert slugs[0]["slug"] != slugs[1]["slug"]
    role = await db.fetchval(
        "select role::text from organization_members where organization_id = $1 and user_id = $2",
        first,
        ana,
    )
    assert role == "owner"


async def test_anon_cannot_create_organizations(runtime: Runtime):
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with runtime.db.user_tx(AnonPrincipal()) as conn:
            await conn.fetchval("select public.create_organization('Nope')")


async def test_an_invalid_timezone_is_refused(db: Connection, runtime: Runtime):
    owner = await make_user(db)
    org = await make_org(db, owner)
    with pytest.raises(asyncpg.CheckViolationError):
        async with runtime.db.user_tx(principal(owner)) as conn:
            await conn.execute(
                "update organizations set timezone = 'Mars/Olympus' where id = $1", org
            )
    async with runtime.db.user_tx(principal(owner)) as conn:
        await conn.execute("update organizations set timezone = 'Europe/Lisbon' where id = $1", org)


async def test_an_organization_always_keeps_an_owner_but_can_be_deleted(
    db: Connection, runtime: Runtime
):
    owner = await make_user(db)
    org = await make_org(db, owner)
    with pytest.raises(asyncpg.PostgresError) as raised:
        await db.execute("delete from organization_members where user_id = $1", owner)
    assert raised.value.sqlstate == "CG409"
    async with runtime.db.user_tx(principal(owner)) as conn:
        deleted = await conn.fetch("delete from organizations where id = $1 returning id", org)
    assert len(deleted) == 1
    assert (
        await db.fetchval(
            "select count(*) from organization_members where organization_id = $1", org
        )
        == 0
    )


async def test_an_organization_with_assigned_conversations_can_be_deleted(
    db: Connection, runtime: Runtime
):
    """The cascade clears assignees and would emit `conversation.assigned` for an
    organization already gone: events of a vanishing organization are dropped."""
    owner = await make_user(db)
    org = await make_org(db, owner)
    agent = await member(db, org, "agent")
    conversation = await make_conversation(db, org)
    await db.execute("update conversations set assignee_id = $2 where id = $1", conversation, agent)
    async with runtime.db.user_tx(principal(owner)) as conn:
        deleted = await conn.fetch("delete from organizations where id = $1 returning id", org)
    assert len(deleted) == 1
    assert (
        await db.fetchval("select count(*) from outbox_events where organization_id = $1", org) == 0
    )


async def test_only_owners_delete_the_organization(db: Connection, runtime: Runtime):
    owner = await make_user(db)
    org = await make_org(db, owner)
    admin = await member(db, org, "admin")
    async with runtime.db.user_tx(principal(admin)) as conn:
        assert await conn.fetch("delete from organizations where id = $1 returning id", org) == []
    assert await db.fetchval("select count(*) from organizations where id = $1", org) == 1


async def test_a_profile_is_created_with_the_auth_user_and_follows_its_email(db: Connection):
    user = await make_user(db, "first@example.com", full_name="Ana Lima")
    profile = await db.fetchrow("select email, full_name from profiles where id = $1", user)
    assert profile is not None
    assert dict(profile) == {"email": "first@example.com", "full_name": "Ana Lima"}
    await db.execute("update auth.users set email = 'second@example.com' where id = $1", user)
    assert (
        await db.fetchval("select email from profiles where id = $1", user) == "second@example.com"
    )


async def test_a_member_can_edit_their_own_profile_only(db: Connection, runtime: Runtime):
    owner = await make_user(db)
    org = await make_org(db, owner)
    agent = await member(db, org, "agent")
    async with runtime.db.user_tx(principal(agent)) as conn:
        mine = await conn.fetch(
            "update profiles set full_name = 'Me' where id = $1 returning id", agent
        )
        theirs = await conn.fetch(
            "update profiles set full_name = 'You' where id = $1 returning id", owner
        )
        teammates = await conn.fetchval("select count(*) from profiles")
    assert len(mine) == 1 and theirs == []
    assert teammates == 2


@pytest.mark.parametrize("who", ["owner", "anon"])
async def test_key_hashes_are_unreadable_through_the_api_roles(
    db: Connection, runtime: Runtime, who: str
):
    owner = await make_user(db)
    org = await make_org(db, owner)
    await issue_key(runtime, org, owner, ["read"])
    caller = principal(owner) if who == "owner" else AnonPrincipal()
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with runtime.db.user_tx(caller) as conn:
            await conn.fetch("select * from private.api_key_hashes")
    with pytest.raises(asyncpg.UndefinedColumnError):
        async with runtime.db.user_tx(caller) as conn:
            await conn.fetch("select hash from public.api_keys")


async def test_the_api_roles_cannot_reach_the_private_schema_at_all(db: Connection):
    for role in ("anon", "authenticated"):
        allowed = await db.fetchval("select has_schema_privilege($1, 'private', 'USAGE')", role)
        assert allowed is False, role


async def test_a_write_key_acts_as_manager_and_a_read_key_writes_nothing(
    db: Connection, runtime: Runtime
):
    owner = await make_user(db)
    org = await make_org(db, owner)
    _, writer = await issue_key(runtime, org, owner, ["read", "write"])
    _, reader = await issue_key(runtime, org, owner, ["read"])
    ranks = "select $1 in (select app.org_ids_with_role($2))"
    async with runtime.db.user_tx(writer) as conn:
        assert await conn.fetchval(ranks, org, "manager")
        assert not await conn.fetchval(ranks, org, "admin")
    async with runtime.db.user_tx(reader) as conn:
        assert not await conn.fetchval(ranks, org, "agent")
        assert await conn.fetchval("select count(*) from organizations") == 1
