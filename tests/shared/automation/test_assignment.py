"""Round-robin and balanced assignment among available agents, capacity, concurrent
workers, and reassignment when a member goes offline or leaves."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest

from shared.automation import assignment
from shared.db import Connection
from shared.runtime import Runtime
from tests.shared.automation.kit import drain, online
from tests.support import make_conversation, make_org, make_user, member


@pytest.fixture
async def team(db: Connection) -> dict[str, UUID]:
    owner = await make_user(db)
    org = await make_org(db, owner)
    agents = sorted([await member(db, org, "agent") for _ in range(4)])
    return {"org": org, **{f"a{i}": a for i, a in enumerate(agents)}}


async def choose(runtime: Runtime, org: UUID, method: assignment.Method) -> UUID | None:
    async with runtime.db.service_tx() as conn:
        chosen = await assignment.choose(conn=conn, organization_id=org, method=method)
        if chosen is not None:
            await assignment.assign_conversation(
                conn=conn,
                organization_id=org,
                conversation_id=await make_conversation(conn, org),
                user_id=chosen,
            )
        return chosen


async def test_round_robin_takes_available_agents_in_turn_within_capacity(
    runtime: Runtime, db: Connection, team: dict[str, UUID]
):
    org = team["org"]
    assert await choose(runtime, org, "round_robin") is None  # nobody online (no row: offline)
    await online(db, org, team["a0"])
    await online(db, org, team["a1"], capacity=1)
    await online(db, org, team["a3"])
    await db.execute(
        "insert into public.member_availability (organization_id, user_id, availability)"
        " values ($1, $2, 'away')",
        org,
        team["a2"],
    )
    picks = [await choose(runtime, org, "round_robin") for _ in range(5)]
    # a1 takes one (its capacity), a2 is away
    assert picks == [team["a0"], team["a1"], team["a3"], team["a0"], team["a3"]]


async def test_balanced_takes_the_fewest_open_conversations_within_capacity(
    runtime: Runtime, db: Connection, team: dict[str, UUID]
):
    org = team["org"]
    for agent, capacity in (("a0", None), ("a1", 2), ("a2", None)):
        await online(db, org, team[agent], capacity)
    for _ in range(3):
        conversation = await make_conversation(db, org)
        await db.execute(
            "update public.conversations set assignee_id = $2 where id = $1",
            conversation,
            team["a0"],
        )
    resolved = await make_conversation(db, org)  # resolved ones do not count
    await db.execute(
        "update public.conversations set assignee_id = $2, status = 'resolved' where id = $1",
        resolved,
        team["a2"],
    )
    picks = [await choose(runtime, org, "balanced") for _ in range(6)]
    loads = {a: picks.count(team[a]) for a in ("a0", "a1", "a2")}
    assert loads == {"a0": 1, "a1": 2, "a2": 3}
    assert picks[:2] in ([team["a1"], team["a2"]], [team["a2"], team["a1"]])
    totals = await db.fetch(
        "select assignee_id, count(*) from public.conversations"
        " where organization_id = $1 and status <> 'resolved' group by 1",
        org,
    )
    counts = {r["assignee_id"]: r["count"] for r in totals}
    assert counts[team["a1"]] == 2  # its capacity
    assert abs(counts[team["a0"]] - counts[team["a2"]]) <= 1


async def test_concurrent_workers_choose_one_after_the_other(
    runtime: Runtime, db: Connection, team: dict[str, UUID]
):
    org = team["org"]
    await online(db, org, team["a0"])
    await online(db, org, team["a1"])
    async with runtime.db.service_tx() as first:
        held = await assignment.choose(conn=first, organization_id=org, method="round_robin")
        second = asyncio.create_task(choose(runtime, org, "round_robin"))
        async with asyncio.timeout(5):  # until the second worker waits on the cursor's lock
            while not await db.fetchval(  # noqa: ASYNC110  (the database offers no event)
                "select exists (select 1 from pg_stat_activity"
                " where wait_event_type = 'Lock' and query like '%assignment_cursors%')"
            ):
                await asyncio.sleep(0.005)
        assert not second.done()
    assert (held, await second) == (team["a0"], team["a1"])


async def test_a_member_going_offline_or_leaving_has_their_conversations_reassigned(
    runtime: Runtime, db: Connection, team: dict[str, UUID]
):
    org = team["org"]
    for agent in ("a0", "a1", "a2"):
        await online(db, org, team[agent])
    mine = []
    for status in ("open", "pending", "resolved"):
        conversation = await make_conversation(db, org)
        await db.execute(
            "update public.conversations set assignee_id = $2, status = $3 where id = $1",
            conversation,
            team["a0"],
            status,
        )
        mine.append(conversation)

    async def assignees() -> list[UUID | None]:
        rows = await db.fetch(
            "select id, assignee_id from public.conversations where id = any($1::uuid[])", mine
        )
        by_id = {r["id"]: r["assignee_id"] for r in rows}
        return [by_id[c] for c in mine]

    # the organization does not ask for it: nothing moves
    await db.execute(
        "update public.member_availability set availability = 'offline' where user_id = $1",
        team["a0"],
    )
    await drain(runtime)
    assert await assignees() == [team["a0"]] * 3

    await db.execute(
        "update public.organizations set reassign_unavailable = 'balanced' where id = $1", org
    )
    await online(db, org, team["a0"])
    await db.execute(
        "update public.member_availability set availability = 'offline' where user_id = $1",
        team["a0"],
    )
    await drain(runtime)
    open_one, pending_one, resolved_one = await assignees()
    assert {open_one, pending_one} == {team["a1"], team["a2"]}  # balanced: one each
    assert resolved_one == team["a0"]  # a resolved conversation stays theirs

    # a1 leaves: their open conversation goes to whoever is available (a2)
    await db.execute(
        "delete from public.organization_members where organization_id = $1 and user_id = $2",
        org,
        team["a1"],
    )
    await drain(runtime)
    assert (await assignees())[:2] == [team["a2"], team["a2"]]


async def test_an_organization_that_reassigns_can_still_be_deleted(
    db: Connection, team: dict[str, UUID]
):
    org = team["org"]
    await db.execute(
        "update public.organizations set reassign_unavailable = 'round_robin' where id = $1", org
    )
    await online(db, org, team["a0"])
    await make_conversation(db, org)
    await db.execute("delete from public.organizations where id = $1", org)
    assert (
        await db.fetchval(
            "select count(*) from public.outbox_events where organization_id = $1", org
        )
        == 0
    )
