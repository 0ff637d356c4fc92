"""The stage funnel's rollup (deal_progress, kept by triggers) against a recount from the
raw deals, stage changes and stages after each kind of write that moves it; and the
funnel with a filter on deals (read raw) against the brute force."""

from __future__ import annotations

import random
from typing import Any
from uuid import UUID

import pytest
import pytest_asyncio

from shared.db import Connection
from shared.runtime import Runtime
from tests.shared.dashboards import world
from tests.shared.dashboards.test_metrics import answer, close
from tests.support import make_contact, make_org, make_user, module_runtime_fixtures
from tests.support_crm import default_pipeline, stages_of

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("dashboards")]
runtime, db = module_runtime_fixtures()
ZONE = "America/New_York"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def org(db: Connection) -> world.Org:
    owner = await make_user(db)
    org_id = await make_org(db, owner)
    pipeline = await default_pipeline(db, org_id)
    built = world.Org(org_id, owner, owner, [owner], {}, pipeline, await stages_of(db, pipeline))
    contacts = [await make_contact(db, org_id) for _ in range(30)]
    await world._deals(db, built, random.Random(3), contacts)
    return built


async def recount(db: Connection, org: UUID) -> dict[UUID, tuple[Any, ...]]:
    """Each deal's pipeline, creation, furthest open position over its changes and current
    stage, and whether it was won, the obvious way."""
    stages = {
        r["id"]: r
        for r in await db.fetch("select * from public.stages where organization_id = $1", org)
    }
    changes = await db.fetch(
        "select deal_id, to_stage_id from public.deal_stage_changes where organization_id = $1",
        org,
    )
    out = {}
    for d in await db.fetch("select * from public.deals where organization_id = $1", org):
        seen = [stages[c["to_stage_id"]] for c in changes if c["deal_id"] == d["id"]
                and c["to_stage_id"] is not None]  # fmt: skip
        seen.append(stages[d["stage_id"]])
        open_positions = [s["position"] for s in seen if s["kind"] == "open"]
        furthest = max(open_positions) if open_positions else None
        out[d["id"]] = (d["pipeline_id"], d["created_at"], furthest, d["status"] == "won")
    return out


async def stored(db: Connection, org: UUID) -> dict[UUID, tuple[Any, ...]]:
    rows = await db.fetch(
        "select deal_id, pipeline_id, created_at, furthest_position, won"
        " from public.deal_progress where organization_id = $1",
        org,
    )
    return {r["deal_id"]: tuple(r.values())[1:] for r in rows}


async def test_the_progress_equals_a_recount_after_every_kind_of_write(
    db: Connection, org: world.Org
):
    s = org.stages
    assert await stored(db, org.id) == await recount(db, org.id)
    deals = [r["id"] for r in await db.fetch(
        "select id from public.deals where organization_id = $1 order by created_at", org.id
    )]  # fmt: skip
    won = await db.fetchval(
        "select id from public.deals where organization_id = $1 and status = 'won' limit 1", org.id
    )
    # a won deal reopened at the first stage: no longer won, still reached what it reached
    await db.execute("update public.deals set stage_id = $2 where id = $1", won, s["Lead"])
    assert await stored(db, org.id) == await recount(db, org.id)
    # stages reordered in one statement: positions swap for every deal that passed them
    lead, proposal = [
        await db.fetchval("select position from public.stages where id = $1", s[n])
        for n in ("Lead", "Proposal")
    ]
    await db.execute(
        "update public.stages set position = case id when $1 then $3::int else $4::int end"
        " where id in ($1, $2)",
        s["Lead"],
        s["Proposal"],
        proposal,
        lead,
    )
    assert await stored(db, org.id) == await recount(db, org.id)
    # a stage a deal passed through, deleted: its changes name no stage any more
    extra = await db.fetchval(
        "insert into public.stages (organization_id, pipeline_id, name, position)"
        " values ($1, $2, 'Extra', 99) returning id",
        org.id,
        org.pipeline,
    )
    await db.execute("update public.deals set stage_id = $2 where id = $1", deals[0], extra)
    furthest_with_extra = (await stored(db, org.id))[deals[0]][2]
    await db.execute("update public.deals set stage_id = $2 where id = $1", deals[0], s["Lead"])
    await db.execute("delete from public.stages where id = $1", extra)
    after = await stored(db, org.id)
    assert furthest_with_extra == 99 and after[deals[0]][2] != 99
    assert after == await recount(db, org.id)
    # a deal deleted takes its row; one created adds its own
    await db.execute("delete from public.deals where id = $1", deals[1])
    fresh = await db.fetchval(
        "insert into public.deals (organization_id, title, pipeline_id, stage_id)"
        " values ($1, 'new', $2, $3) returning id",
        org.id,
        org.pipeline,
        s["Qualified"],
    )
    after = await stored(db, org.id)
    assert deals[1] not in after and fresh in after
    assert after == await recount(db, org.id)


async def test_the_funnel_with_a_deal_filter_reads_raw_and_agrees(
    runtime: Runtime, db: Connection, org: world.Org
):
    stages = {
        r["id"]: r
        for r in await db.fetch("select * from public.stages where organization_id = $1", org.id)
    }
    status_of: dict[UUID, str] = dict(
        await db.fetch(
            "select id, status::text from public.deals where organization_id = $1", org.id
        )
    )
    low, high = world.bounds_of(ZONE)
    for status in ("open", "won"):
        got = await answer(
            runtime,
            org,
            ZONE,
            metric="stage_funnel",
            visualization="funnel",
            filter={"field": "status", "op": "eq", "value": status},
        )
        want: dict[Any, int] = {}
        for deal, (_, created, top, won) in (await recount(db, org.id)).items():
            if not low <= created < high or status_of[deal] != status:
                continue
            for s in stages.values():
                if (
                    s["kind"] == "open"
                    and s["pipeline_id"] == org.pipeline
                    and (won or (top is not None and top >= s["position"]))
                ):
                    want[(None, str(s["id"]))] = want.get((None, str(s["id"])), 0) + 1
            want[(None, "won")] = want.get((None, "won"), 0) + won
        close(got, want)
