"""realtime.messages: a row of an organization's topic is for its members only, in
both directions, whichever channel (realtime.topic) the session says it joined."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg
import pytest

from shared.db import Connection
from tests.security.world import World
from tests.support import make_message


@asynccontextmanager
async def joined(db: Connection, user: UUID | None, channel: str) -> AsyncIterator[Connection]:
    """A session as Realtime authorizes it: the user's role and claims, and the channel."""
    role = "authenticated" if user else "anon"
    claims = {"sub": str(user), "role": role} if user else {"role": role}
    async with db.transaction():
        await db.execute(
            "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true),"
            " set_config('realtime.topic', $3, true)",
            role,
            json.dumps(claims),
            channel,
        )
        yield db
        await db.execute("reset role")


def inbox(org: UUID) -> str:
    return f"org:{org}:inbox"


INSERT = (
    "insert into realtime.messages (topic, extension, payload, event, private)"
    " values ($1, 'broadcast', '{}', 'typing', true)"
)


async def test_a_member_reads_no_row_of_another_organizations_topic(db: Connection, world: World):
    await make_message(db, world.org_a)
    await make_message(db, world.org_b)
    a_rows = await db.fetchval(
        "select count(*) from realtime.messages where topic = $1", inbox(world.org_a)
    )
    assert a_rows > 0

    # B's member on B's own channel: B's rows only, none of A's
    async with joined(db, world.agent_b, inbox(world.org_b)) as conn:
        topics = {r["topic"] for r in await conn.fetch("select topic from realtime.messages")}
        assert topics == {inbox(world.org_b)}
    # on A's channel: nothing at all
    async with joined(db, world.agent_b, inbox(world.org_a)) as conn:
        assert await conn.fetchval("select count(*) from realtime.messages") == 0
    # anon, on either
    async with joined(db, None, inbox(world.org_a)) as conn:
        assert await conn.fetchval("select count(*) from realtime.messages") == 0
    # A's member sees A's rows (the check is not vacuous)
    async with joined(db, world.owner_a, inbox(world.org_a)) as conn:
        assert await conn.fetchval("select count(*) from realtime.messages") == a_rows


@pytest.mark.parametrize("channel_of", ["own", "victim"])
async def test_a_member_inserts_no_row_into_another_organizations_topic(
    db: Connection, world: World, channel_of: str
):
    channel = inbox(world.org_b if channel_of == "own" else world.org_a)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with joined(db, world.agent_b, channel) as conn:
            await conn.execute(INSERT, inbox(world.org_a))
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with joined(db, None, channel) as conn:
            await conn.execute(INSERT, inbox(world.org_a))
    assert await db.fetchval("select count(*) from realtime.messages where event = 'typing'") == 0


async def test_a_member_broadcasts_on_their_own_topic(db: Connection, world: World):
    async with joined(db, world.agent_b, inbox(world.org_b)) as conn:
        await conn.execute(INSERT, inbox(world.org_b))
    rows = await db.fetch("select topic from realtime.messages where event = 'typing'")
    assert [r["topic"] for r in rows] == [inbox(world.org_b)]


async def test_organization_topics_stay_closed_beside_an_open_policy(db: Connection, world: World):
    """Supabase's Realtime quick-start adds `using (true)` for authenticated on this
    shared table; the restrictive policies keep organization topics closed anyway."""
    await db.execute(
        "create policy quickstart_read on realtime.messages for select to authenticated"
        " using (true);"
        " create policy quickstart_write on realtime.messages for insert to authenticated"
        " with check (true)"
    )
    await make_message(db, world.org_a)
    async with joined(db, world.agent_b, inbox(world.org_a)) as conn:
        assert await conn.fetchval("select count(*) from realtime.messages") == 0
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with joined(db, world.agent_b, inbox(world.org_a)) as conn:
            await conn.execute(INSERT, inbox(world.org_a))
    # the open policy does open what no organization owns
    async with joined(db, world.agent_b, "lobby") as conn:
        await conn.execute(INSERT, "lobby")
        assert await conn.fetchval("select count(*) from realtime.messages") == 1
