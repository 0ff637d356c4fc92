"""Misuse of each security-definer function the API roles may call: a member (or key)
of org B names org A's ids and must get a refusal or nothing of A, with A unchanged."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from shared.db import Connection
from shared.runtime import Runtime
from tests.security.world import World
from tests.support import (
    as_,
    issue_key,
    make_channel_account,
    make_contact,
    make_conversation,
    principal,
)


async def refused_to_b(runtime: Runtime, world: World, sqlstate: str, sql: str, *args: Any) -> None:
    """B's owner and B's key each run `sql` and get `sqlstate`."""
    for who in (principal(world.owner_b), world.key_b):
        with pytest.raises(asyncpg.PostgresError) as refused:
            await as_(runtime, who, sql, *args)
        assert refused.value.sqlstate == sqlstate


async def org_ids(db: Connection, runtime: Runtime, world: World) -> None:
    for who in (principal(world.admin_b), world.key_b):
        rows = await as_(runtime, who, "select o from app.org_ids() o")
        assert [r["o"] for r in rows] == [world.org_b]


async def org_ids_with_role(db: Connection, runtime: Runtime, world: World) -> None:
    for role in ("agent", "manager", "admin", "owner"):
        rows = await as_(
            runtime, principal(world.owner_b), "select app.org_ids_with_role($1)", role
        )
        assert [r[0] for r in rows] == [world.org_b]
        rows = await as_(runtime, world.key_b, "select app.org_ids_with_role($1)", role)
        assert [r[0] for r in rows] == ([world.org_b] if role in ("agent", "manager") else [])


async def teammate_ids(db: Connection, runtime: Runtime, world: World) -> None:
    rows = await as_(runtime, principal(world.agent_b), "select t from app.teammate_ids() t")
    assert {r["t"] for r in rows} == {world.owner_b, world.admin_b, world.agent_b}


async def api_key_id(db: Connection, runtime: Runtime, world: World) -> None:
    """Naming A's key in the setting the database once trusted opens nothing of A."""
    _, key_a = await issue_key(runtime, world.org_a, world.owner_a, ["read", "write"])
    async with runtime.db.user_tx(principal(world.agent_b)) as conn:
        await conn.execute(
            "select set_config('connectgain.api_key_id', $1, true)", str(key_a.key_id)
        )
        assert await conn.fetchval("select app.api_key_id()") is None
        assert [r[0] for r in await conn.fetch("select app.org_ids()")] == [world.org_b]
    rows = await as_(runtime, world.key_b, "select app.api_key_id()")
    assert [r[0] for r in rows] == [world.key_b.key_id]


async def create_api_key(db: Connection, runtime: Runtime, world: World) -> None:
    before = await db.fetchval(
        "select count(*) from api_keys where organization_id = $1", world.org_a
    )
    await refused_to_b(
        runtime,
        world,
        "CG403",
        "select app.create_api_key($1, 'stolen', '{read,write}', 'cg_xxxxxxxx', $2)",
        world.org_a,
        b"not a hash",
    )
    after = await db.fetchval(
        "select count(*) from api_keys where organization_id = $1", world.org_a
    )
    assert after == before


async def set_channel_credentials(db: Connection, runtime: Runtime, world: World) -> None:
    account_a = await make_channel_account(db, world.org_a)
    await db.execute(
        "insert into private.channel_credentials (channel_account_id, secrets) values ($1, $2)",
        account_a,
        {"access_token": "a's"},
    )
    await refused_to_b(
        runtime,
        world,
        "CG403",
        "select app.set_channel_credentials($1, $2)",
        account_a,
        {"access_token": "b's"},
    )
    secrets = await db.fetchval(
        "select secrets from private.channel_credentials where channel_account_id = $1", account_a
    )
    assert secrets == {"access_token": "a's"}


async def _members_of_a(db: Connection, world: World) -> int:
    count: int = await db.fetchval(
        "select count(*) from organization_members where organization_id = $1", world.org_a
    )
    return count


async def create_organization(db: Connection, runtime: Runtime, world: World) -> None:
    """Founding an organization of A's name joins nothing of A, and its slug has the
    same shape as any other: it does not tell that A's slug exists."""
    slug_a = await db.fetchval("select slug from organizations where id = $1", world.org_a)
    members_a = await _members_of_a(db, world)
    [row] = await as_(
        runtime, principal(world.owner_b), "select public.create_organization('Org A')"
    )
    mine: UUID = row[0]
    [fresh] = await as_(
        runtime,
        principal(world.owner_b),
        "select public.create_organization($1)",
        "Nobody Has This Name",
    )
    slugs = dict(
        (r["id"], r["slug"])
        for r in await db.fetch(
            "select id, slug from organizations where id = any($1)", [mine, fresh[0]]
        )
    )
    assert mine != world.org_a and slugs[mine] != slug_a
    assert re.fullmatch(r"org-a-[0-9a-f]{8}", slugs[mine])
    assert re.fullmatch(r"nobody-has-this-name-[0-9a-f]{8}", slugs[fresh[0]])
    assert await _members_of_a(db, world) == members_a
    orgs = await as_(runtime, principal(world.owner_b), "select id from organizations")
    assert world.org_a not in {r["id"] for r in orgs}


INVITATION_TOKEN = b"\x01" * 32  # the hash of A's invitation link


async def _invitation_of_a(runtime: Runtime, world: World) -> UUID:
    rows = await as_(
        runtime,
        principal(world.owner_a),
        "select id from app.create_invitation($1, 'invitee@a.example', 'agent', $2,"
        " interval '1 day')",
        world.org_a,
        INVITATION_TOKEN,
    )
    invitation: UUID = rows[0]["id"]
    return invitation


async def create_invitation(db: Connection, runtime: Runtime, world: World) -> None:
    await refused_to_b(
        runtime,
        world,
        "CG403",
        "select app.create_invitation($1, 'me@b.example', 'owner', $2, interval '1 day')",
        world.org_a,
        b"\x02" * 32,
    )
    assert (
        await db.fetchval(
            "select count(*) from organization_invitations where organization_id = $1", world.org_a
        )
        == 0
    )


async def revoke_invitation(db: Connection, runtime: Runtime, world: World) -> None:
    invitation = await _invitation_of_a(runtime, world)
    await refused_to_b(runtime, world, "CG404", "select app.revoke_invitation($1)", invitation)
    assert await db.fetchval(
        "select revoked_at is null from organization_invitations where id = $1", invitation
    )


async def accept_invitation(db: Connection, runtime: Runtime, world: World) -> None:
    """Even holding A's link, someone else's account joins nothing."""
    await _invitation_of_a(runtime, world)
    before = await _members_of_a(db, world)
    rows = await as_(
        runtime,
        principal(world.owner_b),
        "select outcome, organization_id from app.accept_invitation($1)",
        INVITATION_TOKEN,
    )
    assert [tuple(r) for r in rows] == [("wrong_user", None)]
    assert await _members_of_a(db, world) == before


async def member_directory(db: Connection, runtime: Runtime, world: World) -> None:
    for who in (principal(world.owner_b), principal(world.agent_b), world.key_b):
        assert await as_(runtime, who, "select * from app.member_directory($1)", world.org_a) == []
    mine = await as_(
        runtime, principal(world.agent_b), "select * from app.member_directory($1)", world.org_b
    )
    assert len(mine) == 3


async def _webhook_endpoint_of_a(db: Connection, world: World) -> UUID:
    endpoint: UUID = await db.fetchval(
        "insert into public.webhook_endpoints (organization_id, url, events)"
        " values ($1, 'https://a.example.com/hooks', '{contact.created}') returning id",
        world.org_a,
    )
    await db.execute(
        "insert into private.webhook_secrets (endpoint_id, secret) values ($1, $2)",
        endpoint,
        "whsec_" + "A" * 43 + "=",
    )
    return endpoint


async def set_webhook_secret(db: Connection, runtime: Runtime, world: World) -> None:
    endpoint = await _webhook_endpoint_of_a(db, world)
    await refused_to_b(
        runtime,
        world,
        "CG404",
        "select app.set_webhook_secret($1, $2, '1 day')",
        endpoint,
        "whsec_" + "B" * 43 + "=",
    )
    # B's agent, a member of no organization of A's and no admin anywhere, is refused too
    with pytest.raises(asyncpg.PostgresError):
        await as_(
            runtime,
            principal(world.agent_b),
            "select app.set_webhook_secret($1, $2, '1 day')",
            endpoint,
            "whsec_" + "C" * 43 + "=",
        )
    secret = await db.fetchrow(
        "select secret, previous_secret from private.webhook_secrets where endpoint_id = $1",
        endpoint,
    )
    assert dict(secret) == {"secret": "whsec_" + "A" * 43 + "=", "previous_secret": None}


async def replay_event_delivery(db: Connection, runtime: Runtime, world: World) -> None:
    event = await db.fetchval(
        "insert into public.outbox_events (organization_id, event_type, payload)"
        " values ($1, 'contact.created', '{}') returning id",
        world.org_a,
    )
    delivery = await db.fetchval(
        "insert into public.event_deliveries (organization_id, event_id, consumer, status)"
        " values ($1, $2, 'webhooks', 'dead') returning id",
        world.org_a,
        event,
    )
    await refused_to_b(runtime, world, "CG404", "select app.replay_event_delivery($1)", delivery)
    status = await db.fetchval("select status from public.event_deliveries where id = $1", delivery)
    assert status == "dead"


async def _message_of_a(db: Connection, world: World, body: str) -> UUID:
    conversation = await make_conversation(db, world.org_a)
    message: UUID = await db.fetchval(
        "insert into public.messages (organization_id, conversation_id, channel_account_id,"
        " direction, sender_type, body, status)"
        " select organization_id, id, channel_account_id, 'inbound', 'contact', $2, 'received'"
        " from public.conversations where id = $1 returning id",
        conversation,
        body,
    )
    return message


async def search_messages(db: Connection, runtime: Runtime, world: World) -> None:
    await _message_of_a(db, world, "A wants a refund")
    sql = "select * from public.search_messages($1, 'refund')"
    await refused_to_b(runtime, world, "42501", sql, world.org_a)
    # B's own organization has no such message: nothing of A comes back through it
    for who in (principal(world.agent_b), world.key_b):
        assert await as_(runtime, who, sql, world.org_b) == []


async def search_quick_replies(db: Connection, runtime: Runtime, world: World) -> None:
    await db.execute(
        "insert into public.quick_replies (organization_id, owner_user_id, shortcut, body)"
        " values ($1, null, '/refund', 'A refunds'), ($2, $3, '/mine', 'B agent only')",
        world.org_a,
        world.org_b,
        world.agent_b,
    )
    sql = "select shortcut from public.search_quick_replies($1, $2)"
    await refused_to_b(runtime, world, "42501", sql, world.org_a, "/re")
    assert await as_(runtime, world.key_b, sql, world.org_b, "/re") == []
    # one member's own quick replies are not another's (nor an API key's) to find
    mine = await as_(runtime, principal(world.agent_b), sql, world.org_b, "/")
    assert [r["shortcut"] for r in mine] == ["/mine"]
    for who in (principal(world.admin_b), world.key_b):
        assert await as_(runtime, who, sql, world.org_b, "agent") == []


async def search_contacts(db: Connection, runtime: Runtime, world: World) -> None:
    await make_contact(db, world.org_a, name="Zed Okonkwo")
    sql = "select * from public.search_contacts($1, 'okonkwo')"
    await refused_to_b(runtime, world, "42501", sql, world.org_a)
    for who in (principal(world.agent_b), world.key_b):
        assert await as_(runtime, who, sql, world.org_b) == []


async def request_import_cancel(db: Connection, runtime: Runtime, world: World) -> None:
    job = await db.fetchval(
        "insert into public.import_jobs (organization_id, source, entity)"
        " values ($1, 'csv', 'contacts') returning id",
        world.org_a,
    )
    sql = "select app.request_import_cancel($1)"
    for who in (principal(world.owner_b), principal(world.agent_b), world.key_b):
        assert [r[0] for r in await as_(runtime, who, sql, job)] == [None]
    assert not await db.fetchval(
        "select cancel_requested from public.import_jobs where id = $1", job
    )
    # A's own owner may; the job then waits for its runner to stop it
    assert [r[0] for r in await as_(runtime, principal(world.owner_a), sql, job)] == [True]
