"""The invitation schema on its own: RLS, the token table, the e-mail column (as
PostgREST would run them). Who may execute its functions: tests/security/test_privileges.py;
misuse by another organization: tests/security/misuse.py."""

from __future__ import annotations

import hashlib
from uuid import UUID

import asyncpg
import pytest

from shared.db import Connection
from shared.runtime import Runtime
from tests.support import as_, issue_key, make_org, make_user, member, principal

TOKEN = hashlib.sha256(b"the token in the e-mail").digest()


async def invite(runtime: Runtime, admin: UUID, org: UUID, email: str, role: str = "agent") -> UUID:
    rows = await as_(
        runtime,
        principal(admin),
        "select id from app.create_invitation($1, $2, $3, $4, interval '1 day')",
        org,
        email,
        role,
        TOKEN,
    )
    invitation: UUID = rows[0]["id"]
    return invitation


@pytest.fixture
async def org_a(db: Connection) -> dict[str, UUID]:
    owner = await make_user(db, "owner@a.example")
    org = await make_org(db, owner, "A")
    return {"org": org, "owner": owner, "admin": await member(db, org, "admin")}


async def test_the_invitee_sees_nothing_of_the_organization_until_accepting(
    db: Connection, runtime: Runtime, org_a: dict[str, UUID]
):
    await invite(runtime, org_a["admin"], org_a["org"], "new@example.com")
    invitee = principal(await make_user(db, "new@example.com"))
    agent = principal(await member(db, org_a["org"], "agent"))
    assert await as_(runtime, invitee, "select * from organization_invitations") == []
    assert await as_(runtime, invitee, "select * from organization_members") == []
    assert await as_(runtime, agent, "select * from organization_invitations") == []
    assert (
        len(await as_(runtime, principal(org_a["admin"]), "select * from organization_invitations"))
        == 1
    )

    outcome = await as_(runtime, invitee, "select outcome from app.accept_invitation($1)", TOKEN)
    assert outcome[0]["outcome"] == "joined"
    assert len(await as_(runtime, invitee, "select * from organization_members")) == 4
    assert await as_(runtime, invitee, "select * from organization_invitations") == []


@pytest.mark.parametrize("role", ["authenticated", "anon"])
async def test_token_hashes_are_out_of_reach_of_the_api_roles(
    db: Connection, runtime: Runtime, org_a: dict[str, UUID], role: str
):
    await invite(runtime, org_a["admin"], org_a["org"], "new@example.com")
    async with db.transaction():
        await db.execute(f"set local role {role}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await db.fetch("select * from private.invitation_tokens")


async def test_an_api_key_cannot_invite_even_into_its_own_organization(
    db: Connection, runtime: Runtime, org_a: dict[str, UUID]
):
    """Misuse by another organization is tests/security/misuse.py's; this is the one
    refusal it does not cover: the organization's own key."""
    _, key_a = await issue_key(runtime, org_a["org"], org_a["owner"], ["read", "write"])
    with pytest.raises(asyncpg.PostgresError) as refused:
        await as_(
            runtime,
            key_a,
            "select app.create_invitation($1, 'me@b.example', 'owner', $2, interval '1 day')",
            org_a["org"],
            hashlib.sha256(b"mine").digest(),
        )
    assert refused.value.sqlstate == "CG403"
    assert await db.fetchval("select count(*) from organization_invitations") == 0


async def test_profile_email_cannot_be_rewritten_by_anyone_but_auth(
    db: Connection, runtime: Runtime, org_a: dict[str, UUID]
):
    agent = await member(db, org_a["org"], "agent", "agent@a.example")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_(
            runtime,
            principal(agent),
            "update profiles set email = 'owner@a.example' where id = $1",
            agent,
        )
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await db.execute("update profiles set email = 'owner@a.example' where id = $1", agent)
    # other columns stay the member's own to edit
    edited = await as_(
        runtime,
        principal(agent),
        "update profiles set full_name = 'Agent', timezone = 'Europe/Lisbon' where id = $1"
        " returning id",
        agent,
    )
    assert len(edited) == 1
    assert await db.fetchval("select email from profiles where id = $1", agent) == "agent@a.example"
