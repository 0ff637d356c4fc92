"""Every metric against a brute-force computation over the raw rows, in New York across
its fall-back day (rollups) and in Kolkata (+05:30: raw messages), with business-hours
clocks; the rollups against a recomputation; another organization never counted."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import pytest_asyncio

from shared.dashboards import definition, widgets
from shared.dashboards.definition import WidgetQuestion
from shared.dashboards.sql import Query
from shared.db import Connection
from shared.runtime import Runtime
from tests.shared.dashboards import world
from tests.shared.dashboards.brute import AGGREGATES, as_text, grouped, ratio
from tests.support import module_runtime_fixtures, principal

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("dashboards")]
runtime, db = module_runtime_fixtures()
WINDOW = {"from": world.START.isoformat(), "to": world.END.isoformat()}
ZONES = ("America/New_York", "Asia/Kolkata")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def built(db: Connection) -> dict[str, Any]:
    org = await world.build_org(db, seed=1)
    other = await world.build_org(db, seed=2)  # the same shape: must never be counted
    return {"org": org, "other": other, "raw": await world.raw(db, org.id)}


async def answer(runtime: Runtime, org: world.Org, zone: str, **question: Any) -> dict[Any, Any]:
    async with runtime.db.pool.acquire() as conn:
        await conn.execute(
            "update public.organizations set timezone = $2 where id = $1", org.id, zone
        )
    question.setdefault("date_range", WINDOW)
    async with runtime.db.user_tx(principal(org.owner)) as conn:
        result = await widgets.data(
            conn=conn,
            organization_id=org.id,
            question=WidgetQuestion.model_validate(question),
            user_id=org.owner,
        )
    out: dict[Any, Any] = {}
    if result["visualization"] == "kpi":
        out[(None, None)] = result["data"]["value"]
        out["previous"] = result["data"]["previous"]
    elif result["visualization"] == "timeseries":
        for series in result["data"]:
            for point in series["points"]:
                if point["value"] not in (0, None):
                    out[(datetime.fromisoformat(point["bucket"]).date(), series["key"])] = point[
                        "value"
                    ]
    elif result["visualization"] == "heatmap":
        out = {
            (None, f"{c['weekday']}:{c['hour']}"): c["value"] for c in result["data"] if c["value"]
        }
    else:
        out = {
            (None, row["key"]): row["value"]
            for row in result["data"]
            if row["value"] not in (0, None)
        }
    return out


def close(got: dict[Any, Any], want: dict[Any, Any]) -> None:
    want = {k: v for k, v in want.items() if v not in (0, None)}
    got = {k: v for k, v in got.items() if k != "previous" and v not in (0, None)}
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-6), key
    assert want  # the world makes every case non-empty


def transitions(raw: dict[str, Any], keep: Callable[[dict[str, Any]], bool], key: str | None):
    return [(t["at"], as_text(t[key]) if key else None, 1) for t in raw["transitions"] if keep(t)]


def messages(raw: dict[str, Any], keep: Callable[[dict[str, Any]], bool], key: str | None):
    return [
        (m["created_at"], as_text(m[key]) if key else None, 1) for m in raw["messages"] if keep(m)
    ]


def clocks(
    raw: dict[str, Any], kinds: tuple[str, ...], key: str | None, column: str = "wall_seconds"
):
    return [
        (k["stopped_at"], as_text(k[key]) if key else None, k[column])
        for k in raw["clocks"]
        if k["kind"] in kinds
        and k["outcome"] in ("met", "breached")
        and (key != "assignee_id" or k["assignee_id"] is not None)
    ]


def IN(m: dict[str, Any]) -> bool:
    return bool(m["direction"] == "inbound")


def OUT(m: dict[str, Any]) -> bool:
    return bool(m["direction"] == "outbound")


def USER(m: dict[str, Any]) -> bool:
    return bool(m["direction"] == "outbound" and m["sender_type"] == "user")


# (question, brute force: raw → (items, aggregate), grain)
CASES: list[tuple[dict[str, Any], Callable[[dict[str, Any]], tuple[list[Any], Any]]]] = [
    (
        {
            "metric": "conversations_opened",
            "visualization": "timeseries",
            "options": {"dimension": "channel"},
        },
        lambda r: (transitions(r, lambda t: t["from_status"] is None, "channel"), "count"),
    ),
    (
        {
            "metric": "conversations_resolved",
            "visualization": "bar",
            "options": {"dimension": "agent"},
        },
        lambda r: (
            transitions(
                r, lambda t: t["to_status"] == "resolved" and t["assignee_id"], "assignee_id"
            ),
            "count",
        ),
    ),
    (
        {"metric": "conversations_reopened", "visualization": "timeseries", "grouping": "week"},
        lambda r: (
            transitions(
                r, lambda t: t["from_status"] == "resolved" and t["to_status"] != "resolved", None
            ),
            "count",
        ),
    ),
    (
        {"metric": "conversations_handled", "visualization": "table"},
        lambda r: (
            transitions(
                r, lambda t: t["to_status"] == "resolved" and t["assignee_id"], "assignee_id"
            ),
            "count",
        ),
    ),
    (
        {
            "metric": "messages_received",
            "visualization": "timeseries",
            "options": {"dimension": "channel"},
        },
        lambda r: (messages(r, IN, "channel"), "count"),
    ),
    (
        {
            "metric": "messages_sent",
            "visualization": "bar",
            "options": {"dimension": "channel_account"},
        },
        lambda r: (messages(r, OUT, "channel_account_id"), "count"),
    ),
    (
        {"metric": "replies", "visualization": "leaderboard"},
        lambda r: (messages(r, USER, "sender_id"), "count"),
    ),
    (
        {"metric": "messages_sent", "visualization": "timeseries", "grouping": "month"},
        lambda r: (messages(r, OUT, None), "count"),
    ),
    (
        {"metric": "first_response_time", "visualization": "bar"},
        lambda r: (clocks(r, ("first_response",), "channel"), "median"),
    ),
    (
        {
            "metric": "first_response_time",
            "visualization": "timeseries",
            "options": {"statistic": "p90", "basis": "business"},
        },
        lambda r: (clocks(r, ("first_response",), None, "business_seconds"), "p90"),
    ),
    (
        {
            "metric": "resolution_time",
            "visualization": "bar",
            "options": {"statistic": "average", "basis": "business", "dimension": "agent"},
        },
        lambda r: (clocks(r, ("resolution",), "assignee_id", "business_seconds"), "average"),
    ),
    (
        {"metric": "sla_hit_rate", "visualization": "bar"},
        lambda r: (
            [
                (k["stopped_at"], k["kind"], int(k["outcome"] == "met"))
                for k in r["clocks"]
                if k["due_at"] is not None and k["outcome"] in ("met", "breached")
            ],
            "average",
        ),
    ),
    (
        {"metric": "new_contacts", "visualization": "bar"},
        lambda r: ([(c["created_at"], c["source"] or "(none)", 1) for c in r["contacts"]], "count"),
    ),
    (
        {
            "metric": "new_contacts",
            "visualization": "timeseries",
            "options": {"dimension": "channel"},
        },
        lambda r: (
            [(c["created_at"], c["channel"] or "(none)", 1) for c in r["contacts"]],
            "count",
        ),
    ),
    (
        {"metric": "win_rate", "visualization": "timeseries", "grouping": "week"},
        lambda r: (
            [
                (d["won_at"] or d["lost_at"], None, int(d["status"] == "won"))
                for d in r["deals"]
                if d["status"] != "open"
            ],
            "average",
        ),
    ),
    (
        {"metric": "deals_won_lost", "visualization": "bar"},
        lambda r: (
            [
                (
                    d["won_at"] or d["lost_at"],
                    "won" if d["status"] == "won" else d["lost_reason"] or "(no reason)",
                    1,
                )
                for d in r["deals"]
                if d["status"] != "open"
            ],
            "count",
        ),
    ),
]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("case", range(len(CASES)))
async def test_each_metric_equals_the_brute_force(
    runtime: Runtime, built: dict[str, Any], zone: str, case: int
):
    question, brute = CASES[case]
    got = await answer(runtime, built["org"], zone, **question)
    items, aggregate = brute(built["raw"])
    grain = question.get("grouping", "day") if question["visualization"] == "timeseries" else None
    want = grouped(
        items, tz=zone, start=world.START, end=world.END, grain=grain, aggregate=aggregate
    )
    close(got, want)


@pytest.mark.parametrize("zone", ZONES)
async def test_busiest_hours_and_a_kpi_with_its_previous_period(
    runtime: Runtime, built: dict[str, Any], zone: str
):
    org, raw = built["org"], built["raw"]
    from zoneinfo import ZoneInfo

    local = ZoneInfo(zone)
    heat = [
        (
            m["created_at"],
            "{}:{}".format(
                m["created_at"].astimezone(local).isoweekday(),
                m["created_at"].astimezone(local).hour,
            ),
            1,
        )
        for m in raw["messages"]
        if IN(m)
    ]
    got = await answer(runtime, org, zone, metric="busiest_hours", visualization="heatmap")
    close(
        got, grouped(heat, tz=zone, start=world.START, end=world.END, grain=None, aggregate="count")
    )

    kpi = await answer(
        runtime,
        org,
        zone,
        metric="messages_received",
        visualization="kpi",
        date_range={"from": "2026-11-01", "to": "2026-11-07"},
    )
    week = grouped(
        messages(raw, IN, None),
        tz=zone,
        start=world.END - timedelta(days=6),
        end=world.END,
        grain=None,
        aggregate="count",
    )
    before = grouped(
        messages(raw, IN, None),
        tz=zone,
        start=world.END - timedelta(days=13),
        end=world.END - timedelta(days=7),
        grain=None,
        aggregate="count",
    )
    assert kpi[(None, None)] == week[(None, None)]
    assert kpi["previous"] == before[(None, None)]


async def test_kpis_with_a_filter_an_empty_period_and_no_period(
    runtime: Runtime, built: dict[str, Any]
):
    """Both periods come from one statement: each keeps its own range and the filter's
    values, an empty period is 0 for a count and no figure for a median."""
    org, raw, zone = built["org"], built["raw"], "Asia/Kolkata"
    status = {c["id"]: c["status"] for c in raw["conversations"]}
    resolved = messages(raw, lambda m: IN(m) and status[m["conversation_id"]] == "resolved", None)
    kpi = await answer(
        runtime,
        org,
        zone,
        metric="messages_received",
        visualization="kpi",
        filter={"field": "status", "op": "eq", "value": "resolved"},
        date_range={"from": "2026-11-01", "to": "2026-11-07"},
    )
    for key, start, end in (
        ((None, None), world.END - timedelta(days=6), world.END),
        ("previous", world.END - timedelta(days=13), world.END - timedelta(days=7)),
    ):
        want = grouped(resolved, tz=zone, start=start, end=end, grain=None, aggregate="count")
        assert kpi[key] == want[(None, None)] > 0

    nothing = {"from": "2025-01-01", "to": "2025-01-07"}
    empty = await answer(
        runtime, org, zone, metric="messages_received", visualization="kpi", date_range=nothing
    )
    assert empty == {(None, None): 0, "previous": 0}
    median = await answer(
        runtime, org, zone, metric="first_response_time", visualization="kpi", date_range=nothing
    )
    assert median == {(None, None): None, "previous": None}

    now = await answer(runtime, org, zone, metric="open_deal_value", visualization="kpi")
    total = sum(float(d["value"] or 0) for d in raw["deals"] if d["status"] == "open")
    assert now[(None, None)] == pytest.approx(total) and now["previous"] is None


@pytest.mark.parametrize(
    "metric,index", [("messages_sent", "outbound"), ("busiest_hours", "inbound")]
)
async def test_rollup_widgets_under_rls_read_only_their_directions_rows(
    runtime: Runtime, built: dict[str, Any], metric: str, index: str
):
    """Under RLS an enum equality is no index condition: each scan of the rollup must be
    of its direction's partial index, not of both directions' rows filtered."""
    org = built["org"]
    question = WidgetQuestion.model_validate(
        {"metric": metric, "visualization": "kpi" if metric == "messages_sent" else "heatmap"}
    )
    async with runtime.db.pool.acquire() as conn:  # whole-hour offsets: the rollups serve
        await conn.execute(
            "update public.organizations set timezone = 'America/New_York' where id = $1", org.id
        )
    async with runtime.db.user_tx(principal(org.owner)) as conn:
        await conn.execute("set local enable_seqscan = off")
        plan = await definition.check(conn=conn, organization_id=org.id, question=question)
        if plan.visualization == "kpi":
            sql, params = widgets.kpi_statement(plan)
        else:
            query = Query(plan.spec)
            sql, params = plan.metric.build(query), query.params.values
        explained = await conn.fetchval(f"explain (format json) {sql}", *params)
    scans = [n for n in _nodes(explained[0]["Plan"]) if n.get("Relation Name") == "message_rollups"]
    assert len(scans) == (2 if plan.visualization == "kpi" else 1), explained
    for scan in scans:
        used = scan.get("Index Name") or scan["Plans"][0]["Index Name"]
        assert used == f"message_rollups_{index}_idx", scan
        assert "direction" not in scan.get("Filter", ""), scan


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


async def test_a_filter_reads_the_raw_rows_and_agrees(runtime: Runtime, built: dict[str, Any]):
    org, raw = built["org"], built["raw"]
    status = {c["id"]: c["status"] for c in raw["conversations"]}
    got = await answer(
        runtime,
        org,
        "America/New_York",
        metric="messages_received",
        visualization="bar",
        options={"dimension": "channel"},
        filter={"field": "status", "op": "eq", "value": "resolved"},
    )
    items = messages(raw, lambda m: IN(m) and status[m["conversation_id"]] == "resolved", "channel")
    close(
        got,
        grouped(
            items,
            tz="America/New_York",
            start=world.START,
            end=world.END,
            grain=None,
            aggregate="count",
        ),
    )


async def test_pipeline_metrics_of_now_and_the_funnel(runtime: Runtime, built: dict[str, Any]):
    org, raw = built["org"], built["raw"]
    zone = "America/New_York"
    open_deals = [d for d in raw["deals"] if d["status"] == "open"]
    got = await answer(runtime, org, zone, metric="open_deal_value", visualization="bar")
    want: dict[Any, float] = {}
    for d in open_deals:
        want[(None, str(d["stage_id"]))] = want.get((None, str(d["stage_id"])), 0) + float(
            d["value"] or 0
        )
    close(got, want)

    got = await answer(runtime, org, zone, metric="deal_age_by_stage", visualization="bar")
    now = datetime.now(UTC)
    ages: dict[Any, list[float]] = {}
    for d in open_deals:
        ages.setdefault((None, str(d["stage_id"])), []).append(
            (now - d["created_at"]).total_seconds() / 86400
        )
    assert got.keys() == ages.keys()
    for key, values in ages.items():
        assert got[key] == pytest.approx(AGGREGATES["average"](values), abs=0.01)

    got = await answer(
        runtime,
        org,
        zone,
        metric="weighted_forecast",
        visualization="timeseries",
        grouping="month",
        date_range={"from": "2026-10-01", "to": "2027-01-31"},
    )
    forecast: dict[Any, float] = {}
    for d in open_deals:
        close_date = d["expected_close_date"]
        if (
            close_date
            and datetime(2026, 10, 1).date() <= close_date <= datetime(2027, 1, 31).date()
        ):
            key = (close_date.replace(day=1), None)
            forecast[key] = forecast.get(key, 0) + float(d["value"] or 0) * d["probability"] / 100
    close(got, forecast)

    got = await answer(runtime, org, zone, metric="stage_funnel", visualization="funnel")
    stages = {s["id"]: s for s in raw["stages"]}
    low, high = world.bounds_of(zone)
    reached: dict[str, int] = {}
    for d in raw["deals"]:
        if not low <= d["created_at"] < high:
            continue
        seen = [stages[c["to_stage_id"]] for c in raw["changes"] if c["deal_id"] == d["id"]]
        seen.append(stages[d["stage_id"]])
        top = max((s["position"] for s in seen if s["kind"] == "open"), default=-1)
        for s in stages.values():
            if s["kind"] == "open" and (d["status"] == "won" or top >= s["position"]):
                reached[str(s["id"])] = reached.get(str(s["id"]), 0) + 1
        reached["won"] = reached.get("won", 0) + (d["status"] == "won")
    close(got, {(None, k): v for k, v in reached.items()})


@pytest.mark.parametrize("metric", ["sent", "delivered", "read", "failed", "replied"])
async def test_campaign_rates(runtime: Runtime, built: dict[str, Any], metric: str):
    org, raw = built["org"], built["raw"]
    name = f"campaign_{metric}_rate"
    got = await answer(runtime, org, "America/New_York", metric=name, visualization="bar")
    by_conversation = {m["id"]: m for m in raw["messages"]}
    want = {}
    for c in raw["campaigns"]:
        rows = [
            r
            for r in raw["recipients"]
            if r["campaign_id"] == c["id"] and r["status"] != "excluded"
        ]

        def replied(r: dict[str, Any]) -> bool:
            sent = by_conversation.get(r["message_id"])
            return sent is not None and any(
                m["conversation_id"] == sent["conversation_id"]
                and m["direction"] == "inbound"
                and m["created_at"] > sent["created_at"]
                for m in raw["messages"]
            )

        counts = {
            "targeted": len(rows),
            "sent": sum(r["sent_at"] is not None for r in rows),
            "delivered": sum(r["delivered_at"] is not None for r in rows),
            "read": sum(r["read_at"] is not None for r in rows),
            "failed": sum(r["status"] == "failed" for r in rows),
            "replied": sum(r["sent_at"] is not None and replied(r) for r in rows),
        }
        part, whole = {
            "sent": ("sent", "targeted"),
            "delivered": ("delivered", "sent"),
            "read": ("read", "sent"),
            "failed": ("failed", "targeted"),
            "replied": ("replied", "sent"),
        }[metric]
        low, high = world.bounds_of("America/New_York")
        if low <= c["started_at"] < high:
            want[(None, str(c["id"]))] = ratio([(counts[part], counts[whole])])
    close(got, want)


RECOUNTS = {
    "message_rollups": (
        "organization_id, bucket, channel_account_id, direction::text",
        "select organization_id, date_trunc('hour', created_at, 'UTC'), channel_account_id,"
        " direction::text, -1 from public.messages",
    ),
    "reply_rollups": (
        "organization_id, bucket, sender_id",
        "select organization_id, date_trunc('hour', created_at, 'UTC'), sender_id, -1"
        " from public.messages where direction = 'outbound' and sender_type = 'user'"
        " and sender_id is not null",
    ),
}


@pytest.mark.parametrize("table", sorted(RECOUNTS))
async def test_the_rollups_equal_a_recount_of_the_messages(
    db: Connection, built: dict[str, Any], table: str
):
    columns, raw = RECOUNTS[table]
    differences = await db.fetch(
        f"select {columns}, sum(n) from (select {columns}, messages as n from public.{table}"
        f" union all {raw}) x group by {columns} having sum(n) <> 0"
    )
    assert differences == []
    assert await db.fetchval(f"select count(*) from public.{table}") > 0


async def test_status_changes_are_logged_with_the_assignee(db: Connection, built: dict[str, Any]):
    org: world.Org = built["org"]
    conversation: UUID = org.conversations[0]
    await db.execute("update public.conversations set status = 'open' where id = $1", conversation)
    await db.execute(
        "update public.conversations set status = 'resolved', assignee_id = $2 where id = $1",
        conversation,
        org.agents[0],
    )
    last = await db.fetchrow(
        "select from_status::text, to_status::text, assignee_id"
        " from public.conversation_transitions where conversation_id = $1 order by id desc limit 1",
        conversation,
    )
    assert dict(last) == {
        "from_status": "open",
        "to_status": "resolved",
        "assignee_id": org.agents[0],
    }
    unchanged = await db.fetchval(
        "select count(*) from public.conversation_transitions where conversation_id = $1",
        conversation,
    )
    await db.execute("update public.conversations set unread_count = 3 where id = $1", conversation)
    assert (
        await db.fetchval(
            "select count(*) from public.conversation_transitions where conversation_id = $1",
            conversation,
        )
        == unchanged
    )


async def test_a_deleted_conversation_takes_its_messages_out_of_the_rollups(
    db: Connection, built: dict[str, Any]
):
    other: world.Org = built["other"]
    before = await db.fetchval(
        "select sum(messages) from public.message_rollups where organization_id = $1", other.id
    )
    gone = await db.fetchval(
        "select count(*) from public.messages where conversation_id = $1", other.conversations[1]
    )
    await db.execute("delete from public.conversations where id = $1", other.conversations[1])
    after = await db.fetchval(
        "select sum(messages) from public.message_rollups where organization_id = $1", other.id
    )
    assert gone > 0
    assert before - after == gone
    for table in RECOUNTS:
        await test_the_rollups_equal_a_recount_of_the_messages(db, built, table)
