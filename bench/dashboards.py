"""Dashboard widgets at scale: p95 per widget query under RLS as an agent and as the owner.

Two organizations of the same size, each with --scale x (100,000 contacts, 100,000
conversations, 1,000,000 messages, 100,000 deals) over the year before now, with their
status changes, SLA clocks and deal stage history. Loaded with COPY as the table owner
with triggers off (`session_replication_role = replica`: the inbox's outbox and
realtime triggers have nothing to do with dashboards), then the rollups built by the
migration's own backfill statements, as a bulk import would; that triggers keep them
exact is the tests' job (tests/shared/dashboards).

The data is built once into a cluster kept in --keep (default .connectgain/bench-dashboards)
and reused by the next run (--fresh builds it again); migrations added since run over the
kept data (their backfills fill any new rollup), so a copy of another checkout's folder
serves too. Each widget runs through
`shared.dashboards.widgets.data` (the endpoint's code) in a transaction as the agent
under RLS (role authenticated, JWT claims and the role's own settings, as the functions
and PostgREST run) and as the owner, interleaved; the organization lets agents see team
figures so both read the same rows, and both answers must agree.

    .venv/bin/python bench/dashboards.py [--scale 1.0] [--runs 30] [--keep DIR] [--fresh]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from bench.database import new_team, new_user, percentile, unlimited_plans
from shared.dashboards import definition, widgets
from shared.settings import PROJECT_DIR
from shared.tooling.cluster import Cluster, free_port
from shared.tooling.migrate import migrate

P95_TARGET_MS, RATIO_TARGET = 200.0, 1.5
NOW = datetime.now(UTC)
YEAR_AGO = NOW - timedelta(days=365)
CHANNELS = (("whatsapp", 0.6), ("telegram", 0.25), ("email", 0.15))
CHUNK = 100_000


def say(*parts: object) -> None:
    print(*parts, flush=True)


def at(rng: random.Random) -> datetime:
    return YEAR_AGO + timedelta(seconds=rng.random() * 365 * 86400)


def later(rng: random.Random, start: datetime, hours: float) -> datetime:
    return min(NOW, start + timedelta(hours=rng.expovariate(1 / hours)))


async def copy(
    conn: asyncpg.Connection, table: str, columns: list[str], rows: Iterator[tuple[Any, ...]]
) -> int:
    n, batch = 0, []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            await conn.copy_records_to_table(table, columns=columns, records=batch)
            n, batch = n + len(batch), []
    if batch:
        await conn.copy_records_to_table(table, columns=columns, records=batch)
    return n + len(batch)


async def load_org(conn: asyncpg.Connection, name: str, scale: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    n_contacts, n_conv = int(100_000 * scale), int(100_000 * scale)
    n_msg, n_deals = int(1_000_000 * scale), int(100_000 * scale)
    org, owner, agent = await new_team(conn, name)
    await conn.execute("update organizations set agents_see_team_metrics = true where id = $1", org)
    agents = [agent]
    for i in range(9):
        user = await new_user(conn, f"agent{i}@{name}.example")
        await conn.execute(
            "insert into organization_members (organization_id, user_id, role)"
            " values ($1, $2, 'agent')",
            org,
            user,
        )
        agents.append(user)
    accounts = []
    for channel, _ in CHANNELS:
        accounts.append(
            await conn.fetchval(
                "insert into channel_accounts (organization_id, channel, name, external_id)"
                " values ($1, $2, $3, $4) returning id",
                org,
                channel,
                channel,
                f"{name}-{channel}",
            )
        )
    shares = [s for _, s in CHANNELS]
    stages = await conn.fetch(
        "select s.id, s.pipeline_id, s.position, s.probability, s.kind::text from stages s"
        " join pipelines p on p.id = s.pipeline_id and p.is_default"
        " where s.organization_id = $1 order by s.position",
        org,
    )
    started = time.perf_counter()
    await conn.execute("set session_replication_role = replica")
    contacts = [uuid.uuid4() for _ in range(n_contacts)]
    await copy(
        conn,
        "contacts",
        ["id", "organization_id", "name", "source", "created_at"],
        (
            (c, org, f"Contact {i}", rng.choice([None, "ads", "referral", "organic"]), at(rng))
            for i, c in enumerate(contacts)
        ),
    )
    conversations: list[tuple[uuid.UUID, uuid.UUID, datetime, uuid.UUID | None]] = []
    conv_rows, transitions, clocks = [], [], []
    for i in range(n_conv):
        cid, account = uuid.uuid4(), rng.choices(accounts, shares)[0]
        created, assignee = at(rng), rng.choice([None, *agents, *agents, *agents, *agents])
        status = rng.choices(["open", "pending", "resolved"], [0.25, 0.1, 0.65])[0]
        conversations.append((cid, account, created, assignee))
        conv_rows.append((cid, org, contacts[i % n_contacts], account, status, assignee, created))
        transitions.append((org, cid, account, None, "open", assignee, created))
        answered = later(rng, created, 2)
        kinds = [("first_response", created, answered)]
        if status == "resolved":
            resolved = later(rng, answered, 20)
            transitions.append((org, cid, account, "open", "resolved", assignee, resolved))
            kinds.append(("resolution", created, resolved))
            if rng.random() < 0.1:
                reopened = later(rng, resolved, 30)
                transitions.append((org, cid, account, "resolved", "open", assignee, reopened))
                transitions.append(
                    (org, cid, account, "open", "resolved", assignee, later(rng, reopened, 10))
                )
        for kind, start, stop in kinds:
            wall = int((stop - start).total_seconds())
            due = start + timedelta(hours=1 if kind == "first_response" else 24)
            outcome = rng.choices(["met", "cancelled"], [0.95, 0.05])[0]
            outcome = "breached" if outcome == "met" and stop > due else outcome
            clocks.append(
                (
                    org,
                    cid,
                    kind,
                    True,
                    start,
                    due,
                    stop,
                    outcome,
                    due if outcome == "breached" else None,
                    wall,
                    int(wall * 0.4),
                )
            )
    await copy(
        conn,
        "conversations",
        [
            "id",
            "organization_id",
            "contact_id",
            "channel_account_id",
            "status",
            "assignee_id",
            "created_at",
        ],
        iter(conv_rows),
    )
    await copy(
        conn,
        "conversation_transitions",
        [
            "organization_id",
            "conversation_id",
            "channel_account_id",
            "from_status",
            "to_status",
            "assignee_id",
            "at",
        ],
        iter(transitions),
    )
    await copy(
        conn,
        "sla_clocks",
        [
            "organization_id",
            "conversation_id",
            "kind",
            "business_hours_only",
            "started_at",
            "due_at",
            "stopped_at",
            "outcome",
            "breached_at",
            "wall_seconds",
            "business_seconds",
        ],
        iter(clocks),
    )

    def messages() -> Iterator[tuple[Any, ...]]:
        picked = sorted(min(n_conv - 1, int(n_conv * rng.random() ** 1.6)) for _ in range(n_msg))
        for c in picked:
            cid, account, created, assignee = conversations[c]
            inbound = rng.random() < 0.55
            sender = "contact" if inbound else rng.choices(["user", "bot"], [0.85, 0.15])[0]
            yield (
                org,
                cid,
                account,
                "inbound" if inbound else "outbound",
                sender,
                (assignee or rng.choice(agents)) if sender == "user" else None,
                "hi",
                "received" if inbound else "read",
                later(rng, created, 30),
            )

    await copy(
        conn,
        "messages",
        [
            "organization_id",
            "conversation_id",
            "channel_account_id",
            "direction",
            "sender_type",
            "sender_id",
            "body",
            "status",
            "created_at",
        ],
        messages(),
    )
    open_stages = [s for s in stages if s["kind"] == "open"]
    won, lost = (
        next(s for s in stages if s["kind"] == "won"),
        next(s for s in stages if s["kind"] == "lost"),
    )
    positions: dict[uuid.UUID, int] = {}
    deals, changes = [], []
    for i in range(n_deals):
        did, created = uuid.uuid4(), at(rng)
        status = rng.choices(["open", "won", "lost"], [0.35, 0.3, 0.35])[0]
        top = rng.randrange(len(open_stages))
        path = open_stages[: top + 1]
        stage = path[-1] if status == "open" else won if status == "won" else lost
        positions[stage["id"]] = positions.get(stage["id"], 0) + 1024
        decided = later(rng, created, 24 * 30) if status != "open" else None
        deals.append(
            (
                did,
                org,
                f"Deal {i}",
                rng.choice([None, 500, 1200, 9999.99]),
                stage["probability"],
                (created + timedelta(days=rng.randint(0, 180))).date(),
                stage["pipeline_id"],
                stage["id"],
                positions[stage["id"]],
                rng.choice([None, *agents]),
                status,
                decided if status == "won" else None,
                decided if status == "lost" else None,
                rng.choice([None, "price", "timing", "competitor"]) if status == "lost" else None,
                created,
            )
        )
        previous = None
        for s in [*path, *([stage] if status != "open" else [])]:
            changes.append((org, did, previous, s["id"], created))
            previous = s["id"]
    await copy(
        conn,
        "deals",
        [
            "id",
            "organization_id",
            "title",
            "value",
            "probability",
            "expected_close_date",
            "pipeline_id",
            "stage_id",
            "position",
            "assignee_id",
            "status",
            "won_at",
            "lost_at",
            "lost_reason",
            "created_at",
        ],
        iter(deals),
    )
    await copy(
        conn,
        "deal_stage_changes",
        ["organization_id", "deal_id", "from_stage_id", "to_stage_id", "changed_at"],
        iter(changes),
    )
    await conn.execute("set session_replication_role = origin")
    say(
        f"  {name}: {n_contacts:,} contacts, {n_conv:,} conversations, {n_msg:,} messages,"
        f" {n_deals:,} deals, {len(clocks):,} clocks in {time.perf_counter() - started:.0f} s"
    )
    return {"org": org, "owner": owner, "agent": agent}


ROLLUP_BACKFILL = """
insert into public.message_rollups
       (organization_id, bucket, channel_account_id, direction, shard, messages)
select organization_id, date_trunc('hour', created_at, 'UTC'), channel_account_id, direction, 0,
       count(*)
  from public.messages group by 1, 2, 3, 4;
insert into public.reply_rollups (organization_id, bucket, sender_id, shard, messages)
select organization_id, date_trunc('hour', created_at, 'UTC'), sender_id, 0, count(*)
  from public.messages
 where direction = 'outbound' and sender_type = 'user' and sender_id is not null
 group by 1, 2, 3;
select app.refresh_deal_progress(array(select id from public.deals))"""


async def build(url: str, scale: float) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        trigram = await conn.fetch(
            "select indexname, indexdef from pg_indexes where schemaname = 'public'"
            " and indexdef like '%gin_trgm_ops%'"
        )
        for index in trigram:
            await conn.execute(f"drop index public.{index['indexname']}")
        tenants = [
            await load_org(conn, name, scale, seed) for seed, name in ((1, "org-a"), (2, "org-b"))
        ]
        started = time.perf_counter()
        await conn.execute(ROLLUP_BACKFILL)
        for index in trigram:
            await conn.execute(index["indexdef"])
        await conn.execute("vacuum analyze")
        await conn.execute(
            "create schema if not exists bench;"
            " create table if not exists bench.tenants (body jsonb); delete from bench.tenants"
        )
        await conn.execute(
            "insert into bench.tenants values ($1::jsonb)",
            json.dumps([{k: str(v) for k, v in t.items()} for t in tenants]),
        )
        say(f"  rollups, indexes, vacuum analyze in {time.perf_counter() - started:.0f} s")
        return [{k: str(v) for k, v in t.items()} for t in tenants]
    finally:
        await conn.close()


WIDGETS: list[tuple[str, dict[str, Any]]] = [
    (
        "conversations opened, KPI vs previous 30 days",
        {"metric": "conversations_opened", "visualization": "kpi"},
    ),
    (
        "conversations resolved by channel, daily, 90 days",
        {
            "metric": "conversations_resolved",
            "visualization": "timeseries",
            "date_range": {"preset": "last_90_days"},
            "options": {"dimension": "channel"},
        },
    ),
    (
        "messages in by channel, daily, 365 days (rollup)",
        {
            "metric": "messages_received",
            "visualization": "timeseries",
            "date_range": {"preset": "last_365_days"},
            "options": {"dimension": "channel"},
        },
    ),
    (
        "messages out, KPI vs previous 30 days (rollup)",
        {"metric": "messages_sent", "visualization": "kpi"},
    ),
    (
        "replies leaderboard, 30 days (rollup)",
        {"metric": "replies", "visualization": "leaderboard"},
    ),
    (
        "busiest hours heatmap, 90 days (rollup)",
        {
            "metric": "busiest_hours",
            "visualization": "heatmap",
            "date_range": {"preset": "last_90_days"},
        },
    ),
    (
        "messages in of open conversations, 30 days (filter: raw)",
        {
            "metric": "messages_received",
            "visualization": "bar",
            "filter": {"field": "status", "op": "eq", "value": "open"},
        },
    ),
    (
        "first response median, KPI vs previous 30 days",
        {"metric": "first_response_time", "visualization": "kpi"},
    ),
    (
        "first response p90 business hours, weekly, 90 days",
        {
            "metric": "first_response_time",
            "visualization": "timeseries",
            "grouping": "week",
            "date_range": {"preset": "last_90_days"},
            "options": {"statistic": "p90", "basis": "business"},
        },
    ),
    (
        "resolution time median by agent, 30 days",
        {"metric": "resolution_time", "visualization": "bar", "options": {"dimension": "agent"}},
    ),
    ("SLA hit rate, KPI vs previous 30 days", {"metric": "sla_hit_rate", "visualization": "kpi"}),
    (
        "conversations handled per agent, 30 days",
        {"metric": "conversations_handled", "visualization": "table"},
    ),
    ("open load per agent, now", {"metric": "open_load", "visualization": "bar"}),
    ("open deal value by stage, now", {"metric": "open_deal_value", "visualization": "bar"}),
    (
        "weighted forecast, monthly, next 12 months",
        {
            "metric": "weighted_forecast",
            "visualization": "timeseries",
            "grouping": "month",
            "date_range": {"preset": "next_12_months"},
        },
    ),
    (
        "win rate, monthly, 365 days",
        {
            "metric": "win_rate",
            "visualization": "timeseries",
            "grouping": "month",
            "date_range": {"preset": "last_365_days"},
        },
    ),
    (
        "stage funnel, deals created in 90 days",
        {
            "metric": "stage_funnel",
            "visualization": "funnel",
            "date_range": {"preset": "last_90_days"},
        },
    ),
    ("average deal age by stage, now", {"metric": "deal_age_by_stage", "visualization": "bar"}),
    (
        "won and lost by reason, 90 days",
        {
            "metric": "deals_won_lost",
            "visualization": "bar",
            "date_range": {"preset": "last_90_days"},
        },
    ),
    ("new contacts by source, 30 days", {"metric": "new_contacts", "visualization": "bar"}),
]


async def _init(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def one(
    pool: asyncpg.Pool,
    settings: list[tuple[str, str]],
    tenant: dict[str, Any],
    question: definition.WidgetQuestion,
    *,
    rls: bool,
) -> tuple[float, Any]:
    async with pool.acquire() as conn:
        started = time.perf_counter()
        async with conn.transaction():
            if rls:
                claims = json.dumps({"sub": tenant["agent"], "role": "authenticated"})
                await conn.execute(
                    "select set_config(n, v, true) from unnest($1::text[], $2::text[]) s(n, v)",
                    [n for n, _ in settings] + ["role", "request.jwt.claims"],
                    [v for _, v in settings] + ["authenticated", claims],
                )
            answer = await widgets.data(
                conn=conn,
                organization_id=uuid.UUID(tenant["org"]),
                question=question,
                user_id=uuid.UUID(tenant["agent"]) if rls else None,
            )
        return (time.perf_counter() - started) * 1000, answer["data"]


def cpu_ms(pid: int) -> float:
    """The server process's CPU so far (user + system), in ms: steadier than wall-clock
    time on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def same(a: Any, b: Any) -> bool:
    """Equal answers; numbers within a millionth (a deal's age moves with now())."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6)
    return bool(a == b)


async def measure(url: str, tenant: dict[str, Any], runs: int) -> bool:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1, init=_init)
    assert pool is not None
    async with pool.acquire() as conn:
        backend = await conn.fetchval("select pg_backend_pid()")
        settings = [
            tuple(r["s"].split("=", 1))
            for r in await conn.fetch(  # type: ignore[misc]
                "select s from pg_db_role_setting d, unnest(d.setconfig) s"
                " where d.setrole = 'authenticated'::regrole"
            )
        ]
    ok = True
    say(
        f"\n{'widget':<58}{'RLS p50/p95 ms':>16}{'owner p50/p95 ms':>18}{'ratio':>7}"
        f"{'server CPU/query RLS, owner':>30}   load"
    )
    try:
        for label, raw in WIDGETS:
            question = definition.WidgetQuestion.model_validate(raw)
            rls: list[float] = []
            owner: list[float] = []
            first: dict[bool, Any] = {}
            cpu = {True: 0.0, False: 0.0}
            for i in range(runs + 3):  # the first rounds warm caches and plans
                for as_agent in [True, False] if i % 2 else [False, True]:
                    before = cpu_ms(backend)
                    ms, data = await one(pool, settings, tenant, question, rls=as_agent)
                    first.setdefault(as_agent, data)
                    if i >= 3:
                        (rls if as_agent else owner).append(ms)
                        cpu[as_agent] += cpu_ms(backend) - before
            assert same(first[True], first[False]), f"{label}: RLS and owner answers differ"
            r95, o95 = percentile(rls, 95), percentile(owner, 95)
            ratio = r95 / o95
            met = r95 < P95_TARGET_MS and ratio <= RATIO_TARGET
            ok &= met
            say(
                f"{label:<58}{percentile(rls, 50):7.1f}{r95:8.1f}{percentile(owner, 50):10.1f}"
                f"{o95:8.1f}{ratio:7.2f}{cpu[True] / runs:14.1f}{cpu[False] / runs:8.1f} ms"
                f"  {'meets' if met else 'MISSES'}  {os.getloadavg()[0]:.1f}"
            )
    finally:
        await pool.close()
    say(f"\ntargets: p95 < {P95_TARGET_MS:.0f} ms under RLS, RLS/owner p95 <= {RATIO_TARGET}")
    return ok


# ---- what the rollup trigger adds to each message -------------------------------------------

PROCEDURE = """
create procedure bench_insert(conversation uuid, n integer)
language plpgsql as $f$
begin
  for i in 1..n loop  -- one message per transaction, as the ingest stores a delivery
    insert into messages (organization_id, conversation_id, channel_account_id, direction,
           sender_type, body, status)
    select organization_id, id, channel_account_id, 'inbound', 'contact', 'hello', 'received'
      from conversations where id = conversation;
    commit;
  end loop;
end $f$"""


async def _insert_messages(
    url: str, conversation: uuid.UUID, n: int, writers: int
) -> tuple[float, float]:
    """n messages from `writers` server-side loops at once (no client round trips; no
    fsync wait per commit): (wall ms, server CPU ms) per message."""
    conns = [
        await asyncpg.connect(url, server_settings={"synchronous_commit": "off"})
        for _ in range(writers)
    ]
    try:
        pids = [await c.fetchval("select pg_backend_pid()") for c in conns]
        cpu = sum(cpu_ms(p) for p in pids)
        started = time.perf_counter()
        await asyncio.gather(
            *(c.execute("call bench_insert($1, $2)", conversation, n // writers) for c in conns)
        )
        wall = (time.perf_counter() - started) * 1000
        return wall / n, (sum(cpu_ms(p) for p in pids) - cpu) / n
    finally:
        for c in conns:
            await c.close()


async def trigger_cost(n: int, rounds: int) -> None:
    """Messages inserted with the rollup trigger on and off, interleaved, in a fresh
    database, one writer and four at once (same organization, account and hour: the
    striped counters keep them from waiting on each other): per message, wall time, the
    server's CPU and WAL."""
    from bench.database import bench_database

    async with bench_database() as url:
        conn = await asyncpg.connect(url)
        org, _, _ = await new_team(conn, "ingest")
        account = await conn.fetchval(
            "insert into channel_accounts (organization_id, channel, name, external_id)"
            " values ($1, 'whatsapp', 'wa', 'x') returning id",
            org,
        )
        contact = await conn.fetchval(
            "insert into contacts (organization_id, name) values ($1, 'c') returning id", org
        )
        conversation = await conn.fetchval(
            "insert into conversations (organization_id, contact_id, channel_account_id)"
            " values ($1, $2, $3) returning id",
            org,
            contact,
            account,
        )
        await conn.execute(PROCEDURE)
        figures: dict[tuple[bool, int], list[tuple[float, float, float]]] = {}
        for _ in range(rounds):
            for on in (True, False):
                verb = "enable" if on else "disable"
                await conn.execute(f"alter table messages {verb} trigger messages_rollup_insert")
                for writers in (1, 4):
                    wal = await conn.fetchval("select pg_current_wal_lsn()")
                    wall, cpu = await _insert_messages(url, conversation, n, writers)
                    grown = await conn.fetchval("select pg_current_wal_lsn() - $1::pg_lsn", wal)
                    figures.setdefault((on, writers), []).append((wall, cpu, float(grown) / n))
        await conn.execute("alter table messages enable trigger messages_rollup_insert")
        await conn.close()
    say(f"\nPer message, {n:,} one-message transactions, medians of {rounds} interleaved rounds:")
    for (on, writers), runs in sorted(figures.items()):
        wall, cpu, wal = (sorted(r[i] for r in runs)[len(runs) // 2] for i in range(3))
        say(
            f"  rollup trigger {'on ' if on else 'off'}, {writers} writer(s): {wall:.3f} ms,"
            f" server CPU {cpu:.3f} ms, WAL {wal:,.0f} B  (load {os.getloadavg()[0]:.1f})"
        )


def prepare(keep: Path, fresh: bool) -> bool:
    """The kept cluster's folder; whether the data must be built."""
    fresh = fresh or not (keep / "db").exists()
    if fresh and (keep / "db").exists():
        Cluster(data_dir=keep / "db", port=free_port()).destroy()
    keep.mkdir(parents=True, exist_ok=True)
    os.chmod(keep, 0o755)  # noqa: S103  (the server may run as an unprivileged user)
    return fresh


async def main_async(args: argparse.Namespace, keep: Path, fresh: bool) -> bool:
    say(f"load average at the start: {os.getloadavg()}")
    if args.trigger_cost:
        await trigger_cost(args.trigger_cost, args.rounds)
        return True
    cluster = Cluster(data_dir=keep / "db", port=free_port(), durable=True)
    cluster.start()
    try:
        url = cluster.url("bench")
        if fresh:
            conn = await asyncpg.connect(cluster.url("postgres"))
            await conn.execute("create database bench")
            await conn.close()
            await migrate(url, PROJECT_DIR / "supabase", include_local=True)
            await unlimited_plans(url)
            say(
                f"Loading two organizations at scale {args.scale} … (load {os.getloadavg()[0]:.1f})"
            )
            tenants = await build(url, args.scale)
        else:
            # migrations added since the data was built run over it, backfills included
            applied = (await migrate(url, PROJECT_DIR / "supabase", include_local=False)).applied
            conn = await asyncpg.connect(url)
            if applied:
                await conn.execute("vacuum analyze")
            tenants = json.loads(await conn.fetchval("select body::text from bench.tenants"))
            await conn.close()
            say(f"Reusing the data in {keep}; migrations applied now: {applied or 'none'}")
        return await measure(url, tenants[0], args.runs)
    finally:
        cluster.stop()
        say(f"load average at the end: {os.getloadavg()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="of 100k conversations/deals, 1M messages"
    )
    parser.add_argument("--runs", type=int, default=30, help="per widget and caller")
    parser.add_argument("--keep", default=str(PROJECT_DIR / ".connectgain" / "bench-dashboards"))
    parser.add_argument("--fresh", action="store_true", help="build the data again")
    parser.add_argument(
        "--trigger-cost",
        type=int,
        default=0,
        help="only: N messages with the rollup trigger on/off",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --trigger-cost")
    args = parser.parse_args()
    keep = Path(args.keep).absolute()
    fresh = False if args.trigger_cost else prepare(keep, args.fresh)
    return 0 if asyncio.run(main_async(args, keep, fresh)) else 1


if __name__ == "__main__":
    sys.exit(main())
