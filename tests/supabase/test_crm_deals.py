"""Pipelines, stages and deals: the board's invariants hold whoever writes."""

from __future__ import annotations

import asyncio
import random
from uuid import UUID

import asyncpg
import pytest

from shared.db import Connection
from shared.runtime import Runtime
from tests.support import make_contact, make_org, make_user, member, principal
from tests.support_crm import default_pipeline, make_deal, stages_of


@pytest.fixture
async def org(db: Connection) -> dict[str, UUID]:
    owner = await make_user(db)
    org_id = await make_org(db, owner)
    pipeline = await default_pipeline(db, org_id)
    return {
        "org": org_id,
        "owner": owner,
        "agent": await member(db, org_id, "agent"),
        "pipeline": pipeline,
        **await stages_of(db, pipeline),
    }


async def deal_row(db: Connection, deal: UUID) -> asyncpg.Record:
    row = await db.fetchrow(
        "select d.*, s.name as stage from deals d join stages s on s.id = d.stage_id"
        " where d.id = $1",
        deal,
    )
    assert row is not None
    return row


async def column(db: Connection, stage: UUID) -> list[UUID]:
    rows = await db.fetch("select id from deals where stage_id = $1 order by position", stage)
    return [r["id"] for r in rows]


async def test_every_organization_gets_the_default_pipeline(db: Connection, org: dict[str, UUID]):
    rows = await db.fetch(
        "select name, kind::text, probability from stages where pipeline_id = $1 order by position",
        org["pipeline"],
    )
    assert [(r["name"], r["kind"], r["probability"]) for r in rows] == [
        ("Lead", "open", 10),
        ("Qualified", "open", 25),
        ("Proposal", "open", 50),
        ("Negotiation", "open", 75),
        ("Closed Won", "won", 100),
        ("Closed Lost", "lost", 0),
    ]


async def test_a_new_deal_starts_at_the_bottom_of_the_first_stage(
    db: Connection, org: dict[str, UUID]
):
    first = await deal_row(db, await make_deal(db, org["org"]))
    second = await deal_row(db, await make_deal(db, org["org"]))
    assert (first["stage"], first["status"], first["probability"]) == ("Lead", "open", 10)
    assert first["pipeline_id"] == org["pipeline"]
    assert second["position"] > first["position"]
    explicit = await deal_row(db, await make_deal(db, org["org"], probability=40))
    assert explicit["probability"] == 40


async def test_the_stage_must_belong_to_the_deals_pipeline(db: Connection, org: dict[str, UUID]):
    other = await db.fetchval(
        "insert into pipelines (organization_id, name) values ($1, 'Renewals') returning id",
        org["org"],
    )
    other_stage = await db.fetchval(
        "insert into stages (organization_id, pipeline_id, name) values ($1, $2, 'Due')"
        " returning id",
        org["org"],
        other,
    )
    with pytest.raises(asyncpg.PostgresError, match="stage_id: the stage is not in the deal"):
        await make_deal(db, org["org"], pipeline_id=org["pipeline"], stage_id=other_stage)
    deal = await make_deal(db, org["org"])
    with pytest.raises(asyncpg.PostgresError, match="stage_id: the stage is not in the deal"):
        await db.execute("update deals set stage_id = $2 where id = $1", deal, other_stage)
    # changing the pipeline alone lands in its first stage; the stage alone infers nothing
    await db.execute("update deals set pipeline_id = $2 where id = $1", deal, other)
    assert (await deal_row(db, deal))["stage_id"] == other_stage
    inferred = await make_deal(db, org["org"], stage_id=other_stage)
    assert (await deal_row(db, inferred))["pipeline_id"] == other


async def test_won_and_lost_follow_the_stage_and_are_recorded(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    contact = await make_contact(db, org["org"])
    deal = await make_deal(db, org["org"], contact_id=contact)
    async with runtime.db.user_tx(principal(org["agent"])) as conn:
        await conn.execute("update deals set stage_id = $2 where id = $1", deal, org["Proposal"])
        await conn.execute("update deals set stage_id = $2 where id = $1", deal, org["Closed Won"])
    won = await deal_row(db, deal)
    assert (won["status"], won["probability"]) == ("won", 100)
    assert won["won_at"] is not None and won["lost_at"] is None

    # "mark as lost" by status alone moves it to the lost stage
    await db.execute("update deals set status = 'lost', lost_reason = 'Price' where id = $1", deal)
    lost = await deal_row(db, deal)
    assert (lost["stage"], lost["won_at"], lost["lost_reason"]) == ("Closed Lost", None, "Price")
    # reopening returns to the last open stage and forgets the reason
    await db.execute("update deals set status = 'open' where id = $1", deal)
    reopened = await deal_row(db, deal)
    assert (reopened["stage"], reopened["lost_at"], reopened["lost_reason"]) == (
        "Proposal",
        None,
        None,
    )
    with pytest.raises(asyncpg.PostgresError, match="status: the deal is won but its stage"):
        await db.execute(
            "update deals set status = 'won', stage_id = $2 where id = $1", deal, org["Lead"]
        )
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("update deals set lost_reason = 'x' where id = $1", deal)

    history = await db.fetch(
        "select from_stage_id, to_stage_id, changed_by from deal_stage_changes"
        " where deal_id = $1 order by id",
        deal,
    )
    assert [(h["from_stage_id"], h["to_stage_id"]) for h in history] == [
        (None, org["Lead"]),
        (org["Lead"], org["Proposal"]),
        (org["Proposal"], org["Closed Won"]),
        (org["Closed Won"], org["Closed Lost"]),
        (org["Closed Lost"], org["Proposal"]),
    ]
    assert [h["changed_by"] for h in history][1:3] == [org["agent"], org["agent"]]
    events = await db.fetch(
        "select event_type, payload from outbox_events where aggregate_id = $1 order by id", deal
    )
    assert [e["event_type"] for e in events] == [
        "deal.created",
        "deal.stage_changed",
        "deal.stage_changed",
        "deal.won",
        "deal.stage_changed",
        "deal.lost",
        "deal.stage_changed",
    ]
    moved = events[1]["payload"]
    assert (moved["from_stage_id"], moved["to_stage_id"]) == (
        str(org["Lead"]),
        str(org["Proposal"]),
    )
    assert await db.fetchval(
        "select last_activity_at is not null from contacts where id = $1", contact
    )


async def test_pipelines_and_stages_holding_deals_cannot_be_deleted(
    db: Connection, org: dict[str, UUID]
):
    other = await db.fetchval(
        "insert into pipelines (organization_id, name) values ($1, 'Renewals') returning id",
        org["org"],
    )
    stage = await db.fetchval(
        "insert into stages (organization_id, pipeline_id, name) values ($1, $2, 'Due')"
        " returning id",
        org["org"],
        other,
    )
    deal = await make_deal(db, org["org"], stage_id=stage)
    for statement, args in [
        ("delete from pipelines where id = $1", (other,)),
        ("delete from pipelines where id = $1", (org["pipeline"],)),  # the default
        ("delete from stages where id = $1", (stage,)),
        ("update stages set kind = 'won' where id = $1", (stage,)),
    ]:
        with pytest.raises(asyncpg.PostgresError) as raised:
            await db.execute(statement, *args)
        assert raised.value.sqlstate == "CG409", statement
    await db.execute("delete from deals where id = $1", deal)
    await db.execute("delete from pipelines where id = $1", other)
    assert await db.fetchval("select count(*) from stages where pipeline_id = $1", other) == 0


async def test_one_default_pipeline_at_a_time(db: Connection, org: dict[str, UUID]):
    other = await db.fetchval(
        "insert into pipelines (organization_id, name, is_default) values ($1, 'New', true)"
        " returning id",
        org["org"],
    )
    assert await default_pipeline(db, org["org"]) == other
    with pytest.raises(asyncpg.PostgresError, match="is_default: make another pipeline"):
        await db.execute("update pipelines set is_default = false where id = $1", other)


async def test_deleting_the_organization_deletes_its_whole_crm(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    await make_deal(db, org["org"], contact_id=await make_contact(db, org["org"]))
    async with runtime.db.user_tx(principal(org["owner"])) as conn:
        await conn.execute("delete from organizations where id = $1", org["org"])
    for table in ("deals", "stages", "pipelines", "deal_stage_changes"):
        assert await db.fetchval(f"select count(*) from {table}") == 0, table


# ---- moving on the board ------------------------------------------------------------------------


async def move(runtime: Runtime, user: UUID, deal: UUID, stage: UUID, index: int) -> None:
    async with runtime.db.user_tx(principal(user)) as conn:
        await conn.execute("select id from public.move_deal($1, $2, $3)", deal, stage, index)


async def test_moves_place_a_deal_at_an_index_within_and_across_columns(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    a, b, c = [await make_deal(db, org["org"]) for _ in range(3)]
    await move(runtime, org["agent"], c, org["Lead"], 0)
    assert await column(db, org["Lead"]) == [c, a, b]
    await move(runtime, org["agent"], c, org["Lead"], 2)
    assert await column(db, org["Lead"]) == [a, b, c]
    await move(runtime, org["agent"], a, org["Lead"], 99)  # past the end: the bottom
    assert await column(db, org["Lead"]) == [b, c, a]
    await move(runtime, org["agent"], b, org["Qualified"], 0)
    await move(runtime, org["agent"], c, org["Qualified"], 0)
    assert await column(db, org["Qualified"]) == [c, b]
    assert (await deal_row(db, c))["probability"] == 25
    await move(runtime, org["agent"], a, org["Closed Won"], 0)
    assert (await deal_row(db, a))["status"] == "won"


async def test_a_crowded_column_is_respaced(runtime: Runtime, db: Connection, org: dict[str, UUID]):
    deals = [await make_deal(db, org["org"], position=p) for p in (10, 11, 12)]
    await move(runtime, org["agent"], deals[2], org["Lead"], 1)
    assert await column(db, org["Lead"]) == [deals[0], deals[2], deals[1]]
    positions = await db.fetch(
        "select position from deals where stage_id = $1 order by position", org["Lead"]
    )
    assert len({p["position"] for p in positions}) == 3


async def test_refusals(runtime: Runtime, db: Connection, org: dict[str, UUID]):
    deal = await make_deal(db, org["org"])
    stranger = await make_user(db)
    await make_org(db, stranger)
    with pytest.raises(asyncpg.PostgresError) as raised:
        await move(runtime, stranger, deal, org["Lead"], 0)
    assert raised.value.sqlstate == "CG404"
    with pytest.raises(asyncpg.PostgresError, match="at_index: must be 0 or more"):
        await move(runtime, org["agent"], deal, org["Lead"], -1)


async def test_concurrent_moves_keep_every_column_consistent(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    """Many members dragging cards at once: no collision, no lost card, every move applied."""
    # tight positions, so respacing happens under the concurrent load too
    deals = [await make_deal(db, org["org"], position=p) for p in range(1, 13)]
    agents = [await member(db, org["org"], "agent") for _ in range(3)]
    targets = [org["Lead"], org["Qualified"], org["Proposal"]]
    rng = random.Random(7)
    # each member drags their own cards, into the same columns as the others
    plan = [
        [(rng.choice(deals[i::3]), rng.choice(targets), rng.randrange(0, 8)) for _ in range(8)]
        for i in range(3)
    ]

    async def worker(i: int) -> None:
        for deal, stage, index in plan[i]:
            await move(runtime, agents[i], deal, stage, index)

    await asyncio.gather(*(worker(i) for i in range(3)))
    rows = await db.fetch("select id, stage_id, position from deals")
    assert sorted(r["id"] for r in rows) == sorted(deals)
    per_stage: dict[UUID, list[int]] = {}
    for r in rows:
        per_stage.setdefault(r["stage_id"], []).append(r["position"])
    for positions in per_stage.values():
        assert len(positions) == len(set(positions))
    # each deal's last move put it in that stage
    last = {deal: stage for moves in plan for deal, stage, _ in moves}
    assert all(r["stage_id"] == last.get(r["id"], org["Lead"]) for r in rows)


async def test_deals_keep_exact_copies_of_contact_and_company_names(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    contact = await make_contact(db, org["org"], name="Ana")
    company = await db.fetchval(
        "insert into companies (organization_id, name) values ($1, 'Acme') returning id",
        org["org"],
    )
    deal = await make_deal(db, org["org"], contact_id=contact, company_id=company)
    names = "select contact_name, company_name, updated_at from deals where id = $1"
    before = await db.fetchrow(names, deal)
    assert (before["contact_name"], before["company_name"]) == ("Ana", "Acme")
    async with runtime.db.user_tx(principal(org["agent"])) as conn:
        await conn.execute("update contacts set name = 'Ana Lima' where id = $1", contact)
        await conn.execute("update companies set name = 'Acme Inc' where id = $1", company)
        # a writer cannot make the copy lie
        await conn.execute("update deals set contact_name = 'Someone' where id = $1", deal)
    after = await db.fetchrow(names, deal)
    assert (after["contact_name"], after["company_name"]) == ("Ana Lima", "Acme Inc")
    assert after["updated_at"] == before["updated_at"]  # the deal itself did not change
    await db.execute("delete from contacts where id = $1", contact)
    assert (await db.fetchrow(names, deal))["contact_name"] is None


async def test_renumbering_a_column_leaves_alone_a_deal_moved_out_of_it_meanwhile(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    """One member renumbers Lead while another's move of one of its deals to Qualified
    is not committed yet: once it is, that deal keeps its place in Qualified."""
    leaving, staying, dropped = [await make_deal(db, org["org"], position=p) for p in (1, 2, 3)]
    for position in (1024, 2048):
        await make_deal(db, org["org"], stage_id=org["Qualified"], position=position)
    async with runtime.db.pool.acquire() as other:
        async with other.transaction():
            await other.execute(
                "update deals set stage_id = $1 where id = $2", org["Qualified"], leaving
            )
            # between 1 and 2 there is no room: Lead is renumbered, and waits on `leaving`
            renumbering = asyncio.create_task(move(runtime, org["agent"], dropped, org["Lead"], 1))
            for _ in range(200):
                waiting = await db.fetchval(
                    "select count(*) from pg_stat_activity"
                    " where wait_event_type = 'Lock' and query like '%move_deal%'"
                )
                if waiting:
                    break
                await asyncio.sleep(0.01)
            assert waiting == 1
        await renumbering
    assert await column(db, org["Lead"]) == [staying, dropped]
    assert (await deal_row(db, leaving))["stage_id"] == org["Qualified"]
    positions = await db.fetch(
        "select position from deals where stage_id = $1 order by position", org["Qualified"]
    )
    assert [row["position"] for row in positions] == [1024, 2048, 3072]
