"""The SPA's inbox reads at scale, as supabase-js sends them, under RLS and as the owner.

Two organizations, each with --contacts contacts, --conversations conversations and
--messages messages (default 100,000 / 100,000 / 1,000,000 in all, half each), loaded
with COPY through the real triggers (outbox, realtime, contact activity). Then, for
organization A, each query in two shapes, the PostgREST SQL of:

  careless    what an SPA sends when it leaves the organization to RLS
  documented  what docs/inbox-queries.md says to send (organization_id, keyset, RPCs)

each as an agent under RLS (role authenticated, request.jwt.claims and the role's own
settings, as PostgREST applies them) and as the owner (same SQL and settings, RLS
bypassed), interleaved. Prints p50/p95/p99 and the RLS/owner ratio. Then the write
cost of the indexes the inbox reads added: the in-process webhook ingest of
bench/ingest.py on a small database with and without each of them, in the same run.

    .venv/bin/python bench/inbox.py [--scale 1.0] [--runs 100] [--ingest 2000] [--db-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from bench import ingest
from bench.database import bench_database, new_team, percentile
from bench.inbox_queries import Shape, inbox_queries

P95_TARGET_MS = 50.0
RATIO_TARGET = 1.5
DEEP_PAGE_TARGET_MS = 200.0
WORDS = (
    "hello",
    "hi",
    "thanks",
    "order",
    "delivery",
    "package",
    "tracking",
    "number",
    "invoice",
    "payment",
    "card",
    "account",
    "password",
    "login",
    "address",
    "change",
    "cancel",
    "when",
    "where",
    "please",
    "help",
    "today",
    "tomorrow",
    "week",
    "price",
    "discount",
    "coupon",
    "size",
    "colour",
    "color",
    "exchange",
    "return",
    "damaged",
    "missing",
    "late",
    "arrived",
    "store",
    "open",
    "hours",
    "phone",
    "email",
    "reply",
    "waiting",
    "again",
    "still",
    "great",
    "good",
    "bad",
    "support",
    "agent",
    "manager",
    "shipping",
    "courier",
    "receipt",
    "warranty",
    "broken",
    "screen",
    "battery",
    "charger",
    "cable",
)
SEARCH_WORD = "refund"  # in ~1% of messages
SEARCH_SHARE = 0.01
FIRST = "Ana Ben Carla Dev Eva Femi Gus Hana Ivan Jo Kemal Lea Mo Nia Omar Pia Raj Sara Tom Uma"
LAST = "Silva Smith Garcia Chen Kowalski Ivanova Müller Rossi Dubois Nakamura Haddad Novak"
RARE_LAST = "Okonkwo"  # ~0.3% of contacts: the contact search
CHANNELS = (("whatsapp", 0.6), ("telegram", 0.25), ("email", 0.15))
STATUSES = (("open", 0.3), ("pending", 0.1), ("snoozed", 0.05), ("resolved", 0.55))


def say(*parts: object) -> None:
    print(*parts, flush=True)


@dataclass
class Tenant:
    org: uuid.UUID
    owner: uuid.UUID
    agent: uuid.UUID
    busy_account: uuid.UUID  # the channel account with 60% of the traffic
    long_thread: uuid.UUID  # the conversation with the most messages


# ---- loading ------------------------------------------------------------------------------------


async def load_tenant(
    conn: asyncpg.Connection, name: str, contacts: int, conversations: int, messages: int, seed: int
) -> Tenant:
    rng = random.Random(seed)
    org, owner, agent = await new_team(conn, name)
    accounts = [
        await conn.fetchval(
            "insert into channel_accounts (organization_id, channel, name, external_id)"
            " values ($1, $2, $3, $4) returning id",
            org,
            channel,
            channel.title(),
            f"{name}-{channel}",
        )
        for channel, _ in CHANNELS
    ]
    shares = [share for _, share in CHANNELS]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    first, last = FIRST.split(), LAST.split()
    contact_ids = [uuid.uuid4() for _ in range(contacts)]
    contact_rows = []
    for i, contact in enumerate(contact_ids):
        surname = RARE_LAST if rng.random() < 0.003 else rng.choice(last)
        given = rng.choice(first)
        contact_rows.append(
            (
                contact,
                org,
                f"{given} {surname}",
                f"{given.lower()}.{i}@{name}.example",
                f"+1555{seed}{i:07d}",
                start + timedelta(seconds=rng.randint(0, 300 * 86400)),
            )
        )
    started = time.perf_counter()
    await conn.copy_records_to_table(
        "contacts",
        columns=["id", "organization_id", "name", "email", "phone", "created_at"],
        records=contact_rows,
    )
    # Conversation i is contact i's (one unresolved per contact and account).
    conv_ids = [uuid.uuid4() for _ in range(conversations)]
    conv_account = [rng.choices(accounts, shares)[0] for _ in range(conversations)]
    # Skewed threads: a few long conversations, most of a handful of messages.
    counts = [0] * conversations
    last_at: list[datetime | None] = [None] * conversations
    message_rows = []
    for _ in range(messages):
        c = min(conversations - 1, int(conversations * rng.random() ** 1.6))
        counts[c] += 1
        at = start + timedelta(seconds=rng.randint(0, 330 * 86400) + rng.random())
        last_at[c] = at if last_at[c] is None or at > last_at[c] else last_at[c]  # type: ignore[operator]
        inbound = rng.random() < 0.55
        words = rng.choices(WORDS, k=rng.randint(5, 18))
        if rng.random() < SEARCH_SHARE:
            words.insert(rng.randrange(len(words)), SEARCH_WORD)
        message_rows.append(
            (
                org,
                conv_ids[c],
                conv_account[c],
                "inbound" if inbound else "outbound",
                "contact" if inbound else "user",
                " ".join(words).capitalize(),
                "received" if inbound else "read",
                at,
            )
        )
    conv_rows = []
    for i, conv in enumerate(conv_ids):
        status = rng.choices([s for s, _ in STATUSES], [w for _, w in STATUSES])[0]
        conv_rows.append(
            (
                conv,
                org,
                contact_ids[i % contacts],
                conv_account[i],
                status if i < contacts else "resolved",
                last_at[i],
                rng.randint(0, 3) if status == "open" else 0,
                (last_at[i] or start) - timedelta(days=rng.randint(0, 30)),
            )
        )
    await conn.copy_records_to_table(
        "conversations",
        columns=[
            "id",
            "organization_id",
            "contact_id",
            "channel_account_id",
            "status",
            "last_message_at",
            "unread_count",
            "created_at",
        ],
        records=conv_rows,
    )
    # in the order they arrive in production: the table's pages follow time
    message_rows.sort(key=lambda row: row[-1])
    chunk = 100_000
    for i in range(0, len(message_rows), chunk):
        await conn.copy_records_to_table(
            "messages",
            columns=[
                "organization_id",
                "conversation_id",
                "channel_account_id",
                "direction",
                "sender_type",
                "body",
                "status",
                "created_at",
            ],
            records=message_rows[i : i + chunk],
        )
    say(
        f"  {name}: {contacts:,} contacts, {conversations:,} conversations, {messages:,} messages"
        f" in {time.perf_counter() - started:.0f} s (longest thread {max(counts):,})"
    )
    return Tenant(
        org=org,
        owner=owner,
        agent=agent,
        busy_account=accounts[0],
        long_thread=conv_ids[counts.index(max(counts))],
    )


# ---- measuring ----------------------------------------------------------------------------


async def role_settings(conn: asyncpg.Connection, role: str) -> list[tuple[str, str]]:
    """The role's own settings (ALTER ROLE … SET), which PostgREST applies per request."""
    rows = await conn.fetch(
        "select s from pg_db_role_setting d, unnest(d.setconfig) s"
        " where d.setrole = $1::regrole and d.setdatabase in (0, (select oid from pg_database"
        " where datname = current_database()))",
        role,
    )
    return [tuple(r["s"].split("=", 1)) for r in rows]  # type: ignore[misc]


class Runner:
    def __init__(self, pool: asyncpg.Pool, settings: list[tuple[str, str]]) -> None:
        self.pool = pool
        self.settings = settings

    async def run(self, sql: str, args: tuple[Any, ...], *, agent: uuid.UUID | None) -> Any:
        """One request: a transaction with the role's settings, as the agent or the owner."""
        async with self.pool.acquire() as conn, conn.transaction():
            names = [n for n, _ in self.settings]
            values = [v for _, v in self.settings]
            await conn.execute(
                "select set_config(n, v, true) from unnest($1::text[], $2::text[]) s(n, v)",
                names,
                values,
            )
            if agent is not None:
                await conn.execute(
                    "select set_config('role', 'authenticated', true),"
                    " set_config('request.jwt.claims', $1, true)",
                    json.dumps({"sub": str(agent), "role": "authenticated"}),
                )
            return await conn.fetchval(sql, *args)


@dataclass
class Figure:
    label: str
    shape: str
    rls: dict[str, float]
    owner: dict[str, float]
    judged: bool

    @property
    def ratio(self) -> float:
        return self.rls["p95"] / self.owner["p95"]


async def jit_cost(pool: asyncpg.Pool, agent: uuid.UUID, shapes: list[Shape]) -> None:
    """What JIT would cost each query under RLS with PostgreSQL's defaults (jit on above a
    cost of 100,000): the planner's estimate, and the compile time when it kicks in."""
    say("\nUnder RLS with jit = on (PostgreSQL's default), EXPLAIN ANALYZE once each:")
    for shape in shapes:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "select set_config('jit', 'on', true), set_config('role', 'authenticated', true),"
                " set_config('request.jwt.claims', $1, true)",
                json.dumps({"sub": str(agent), "role": "authenticated"}),
            )
            raw = await conn.fetchval(
                f"explain (analyze, format json) {shape.rls_sql}", *shape.args
            )
        explained = (json.loads(raw) if isinstance(raw, str) else raw)[0]
        jit = explained.get("JIT", {}).get("Timing", {}).get("Total")
        cost = explained["Plan"]["Total Cost"]
        compiled = f"JIT {jit:.0f} ms of " if jit else "no JIT, "
        say(
            f"  {shape.label[:52]:<54}{shape.kind:<11} cost {cost:>9,.0f}"
            f"  {compiled}{explained['Execution Time']:.0f} ms"
        )


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": statistics.median(samples),
        "p95": percentile(samples, 95),
        "p99": percentile(samples, 99),
    }


async def measure(runner: Runner, shape: Shape, agent: uuid.UUID, runs: int) -> Figure:
    rls: list[float] = []
    owner: list[float] = []
    for i in range(runs + 5):
        pair = [(rls, shape.rls_sql, agent), (owner, shape.owner_sql, None)]
        for samples, sql, who in pair if i % 2 else pair[::-1]:
            started = time.perf_counter()
            await runner.run(sql, shape.args, agent=who)
            if i >= 5:  # the first rounds warm caches and plans
                samples.append((time.perf_counter() - started) * 1000)
    if shape.same_answer:
        a = await runner.run(shape.rls_sql, shape.args, agent=agent)
        b = await runner.run(shape.owner_sql, shape.args, agent=None)
        assert a == b, f"{shape.label}: RLS and owner answers differ"
    return Figure(shape.label, shape.kind, summary(rls), summary(owner), shape.kind == "documented")


def report(figures: list[Figure]) -> bool:
    say(
        f"\n{'query':<58}{'shape':<12}{'RLS p50/p95/p99 ms':>22}{'owner p50/p95/p99 ms':>24}"
        f"{'ratio':>7}"
    )
    ok = True
    for f in figures:
        r, o = f.rls, f.owner
        verdict = ""
        if f.judged:
            limit = DEEP_PAGE_TARGET_MS if "page 100" in f.label else P95_TARGET_MS
            met = r["p95"] < min(limit, P95_TARGET_MS) and f.ratio <= RATIO_TARGET
            ok &= met
            verdict = "  meets" if met else "  MISSES"
        say(
            f"{f.label:<58}{f.shape:<12}"
            f"{r['p50']:7.1f}{r['p95']:7.1f}{r['p99']:8.1f}"
            f"{o['p50']:9.1f}{o['p95']:7.1f}{o['p99']:8.1f}"
            f"{f.ratio:7.2f}{verdict}"
        )
    say(
        f"\ntargets for the documented shapes: p95 < {P95_TARGET_MS:.0f} ms and RLS/owner <="
        f" {RATIO_TARGET} (page 100 included)"
    )
    return ok


# ---- the write cost of the indexes ---------------------------------------------------------

# name → how to make it again; conversations_recent_idx replaced conversations_inbox_idx,
# so every run without the first has the second back.
ADDED = {
    "conversations_recent_idx": "create index conversations_recent_idx on public.conversations"
    " (organization_id, last_message_at desc nulls last, id)",
    "messages_body_trgm_idx": "create index messages_body_trgm_idx on public.messages"
    " using gin (body extensions.gin_trgm_ops)",
    "messages_org_created_idx": "create index messages_org_created_idx on public.messages"
    " (organization_id, created_at, id)",
    "contacts_search_trgm_idx": "create index contacts_search_trgm_idx on public.contacts"
    " using gin ((coalesce(name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, ''))"
    " extensions.gin_trgm_ops)",
}
REPLACED = (
    "create index conversations_inbox_idx on public.conversations"
    " (organization_id, status, last_message_at desc)"
)


async def set_indexes(db_url: str, present: set[str]) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        for name, create in ADDED.items():
            await conn.execute(f"drop index if exists public.{name}")
            if name in present:
                await conn.execute(create)
        await conn.execute("drop index if exists public.conversations_inbox_idx")
        if "conversations_recent_idx" not in present:  # the index it replaced
            await conn.execute(REPLACED)
    finally:
        await conn.close()


async def ingest_cost(n: int, rounds: int) -> None:
    """The webhook ingest in process (bench/ingest.py's), by index set, interleaved."""
    sets: list[tuple[str, set[str]]] = [
        ("before (no index of the inbox reads)", set()),
        *[(f"+ {name} only", {name}) for name in ADDED],
        ("after (all of them)", set(ADDED)),
    ]
    results: dict[str, list[ingest.Run]] = {label: [] for label, _ in sets}
    async with bench_database() as db_url:
        for _ in range(rounds):
            for label, present in sets:
                await set_indexes(db_url, present)
                results[label].append(await ingest.handler(db_url, n, 16, min(1000, n), 1))
    say(
        f"\nIngest write cost: {n:,} WhatsApp messages in process (bench/ingest.py's handler,"
        f" concurrency 16, one per delivery), medians of {rounds} interleaved rounds; CPU per"
        " message (PostgreSQL + the app) is the steadiest figure on a shared machine"
    )
    base_cpu = statistics.median(cpu_per_message(r, n) for r in results[sets[0][0]])
    for label, runs in results.items():
        rate = statistics.median(n / r.seconds for r in runs)
        cpu = statistics.median(cpu_per_message(r, n) for r in runs)
        wal = runs[len(runs) // 2].database.split(", PostgreSQL")[0]
        change = f"{cpu / base_cpu - 1:+.0%}"
        say(f"  {label:<40}{rate:6.0f} msg/s  CPU {cpu:.2f} ms/msg ({change})  {wal}")


def cpu_per_message(run: ingest.Run, n: int) -> float:
    """PostgreSQL's CPU (read from the run's database line) and the app's, in ms."""
    pg = float(run.database.split("PostgreSQL CPU ")[1].split(" ms")[0])
    return pg + (run.server_cpu or 0) / n * 1000


# ---- main ----------------------------------------------------------------------------------


async def bench(db_url: str, scale: float, runs: int) -> bool:
    contacts, conversations, messages = (
        max(100, int(100_000 * scale / 2)),
        max(100, int(100_000 * scale / 2)),
        max(1000, int(1_000_000 * scale / 2)),
    )
    loader = await asyncpg.connect(db_url)
    try:
        say(
            f"Loading two organizations ({contacts:,} contacts, {conversations:,} conversations,"
            f" {messages:,} messages each) with COPY through the triggers … (load"
            f" {os.getloadavg()[0]:.1f})"
        )
        # The trigram indexes are built after the load, as for any bulk load: one sort
        # instead of a million small GIN insertions (the triggers all fire as usual).
        deferred = await loader.fetch(
            "select indexname, indexdef from pg_indexes"
            " where schemaname = 'public' and indexdef like '%gin_trgm_ops%'"
        )
        for index in deferred:
            await loader.execute(f"drop index public.{index['indexname']}")
        # one connection per organization, both at once: the triggers are the work
        second = await asyncpg.connect(db_url)
        try:
            a, _ = await asyncio.gather(
                load_tenant(loader, "org-a", contacts, conversations, messages, 1),
                load_tenant(second, "org-b", contacts, conversations, messages, 2),
            )
        finally:
            await second.close()
        started = time.perf_counter()
        for index in deferred:
            await loader.execute(index["indexdef"])
        say(f"  trigram indexes built in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        await loader.execute("vacuum analyze")
        say(f"  vacuum analyze in {time.perf_counter() - started:.0f} s")
        settings = await role_settings(loader, "authenticated")
    finally:
        await loader.close()
    say(f"authenticated's own settings, applied to both callers: {settings or 'none'}")
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
    assert pool is not None
    runner = Runner(pool, settings)
    try:
        shapes = await inbox_queries(
            pool, a.org, a.busy_account, a.long_thread, SEARCH_WORD, RARE_LAST
        )
        await jit_cost(pool, a.agent, shapes)
        figures = []
        for shape in shapes:
            n = runs if shape.kind == "documented" else max(10, runs // 5)
            say(f"  {shape.label} ({shape.kind}) × {n} … (load {os.getloadavg()[0]:.1f})")
            figures.append(await measure(runner, shape, a.agent, n))
    finally:
        await pool.close()
    return report(figures)


async def main_async(args: argparse.Namespace) -> bool:
    say(f"load average at the start: {os.getloadavg()}")
    ok = True
    if not args.ingest_only:
        async with bench_database(args.db_url) as db_url:
            ok = await bench(db_url, args.scale, args.runs)
    if args.ingest:
        await ingest_cost(args.ingest, args.rounds)
    say(f"load average at the end: {os.getloadavg()}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db-url", help="an existing migrated, empty database")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="of 100k contacts/conversations and 1M messages"
    )
    parser.add_argument("--runs", type=int, default=100, help="per documented query")
    parser.add_argument("--ingest", type=int, default=2000, help="messages per ingest run; 0: skip")
    parser.add_argument("--rounds", type=int, default=3, help="ingest rounds per index set")
    parser.add_argument("--ingest-only", action="store_true", help="skip the reads")
    args = parser.parse_args()
    return 0 if asyncio.run(main_async(args)) else 1


if __name__ == "__main__":
    sys.exit(main())
