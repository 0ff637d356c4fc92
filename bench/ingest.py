"""Inbound throughput: signed WhatsApp webhooks through the real handler into the real database.

    .venv/bin/python bench/ingest.py [--messages 5000] [--concurrency 16] [--db-url URL]
                                     [--http-only] [--server 'COMMAND {port}' ...]

Two modes in one run, against a baseline of the same number of bare single-row
inserts, one transaction each, through asyncpg with the same concurrency, and the
database's part alone (the same deliveries replayed by a loop in one backend):

  in-process  each request straight into the gateway's ASGI app, as the HTTP server
              hands it over: the handler and the database, without HTTP.
  HTTP        what a provider sees: `connectgain serve` in its own process on a
              loopback port, and the load from bench/loadgen.py in another, over
              keep-alive HTTP/1.1 connections, one message per delivery.

Prints messages/s, p50/p99 latency and the ratio to the baseline for each, the WAL
(bytes, records) and PostgreSQL CPU per message, the server's and load generator's
CPU per message, and the tables written per message.
Target over HTTP: at least 1,000 messages/s on 2 cores with p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from starlette.types import ASGIApp, Message

from bench import dbcost, serving
from bench.database import bench_database, percentile
from shared.channels.base import WebhookRequest
from shared.channels.meta.graph import sign
from shared.channels.registry import channel_named
from shared.inbox import pipeline
from shared.inbox.accounts import load_versioned
from shared.runtime import Runtime
from shared.settings import Settings
from shared.tooling.gateway import Gateway
from shared.web import prepare_heap_for_serving

PHONE_NUMBER_ID = "106540352242922"
APP_SECRET = "bench-app-secret"


# Provider time: messages are stamped as sent at this many per second, so a repeat
# sender writes again senders / PACE seconds later (10 s for 1,000 senders: a live chat).
PACE = 100


def webhook(first: int, count: int, senders: int, pace: int = PACE) -> bytes:
    """Messages first … first+count-1, each from one of `senders` senders (new senders
    first, then repeats), in one delivery as Meta batches them under load; message n
    sent n / pace seconds into the run."""
    ids = [str(351910000000 + n % senders) for n in range(first, first + count)]
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": f"Sender {wa_id}"}, "wa_id": wa_id}
                         for wa_id in dict.fromkeys(ids)],
            "messages": [{"from": wa_id, "id": f"wamid.BENCH{n:08d}",
                          "timestamp": str(1731585600 + n // pace), "type": "text",
                          "text": {"body": f"message {n}"}}
                         for n, wa_id in enumerate(ids, start=first)],
        }}]}],
    }  # fmt: skip
    return json.dumps(body).encode()


async def run_pool(jobs: list[Any], concurrency: int, work: Any) -> tuple[float, list[float]]:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    latencies: list[float] = []

    async def worker() -> None:
        while not queue.empty():
            job = queue.get_nowait()
            started = time.perf_counter()
            await work(job)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def baseline(db_url: str, n: int, concurrency: int) -> Run:
    pool = await asyncpg.create_pool(db_url, min_size=concurrency, max_size=concurrency)
    await pool.execute(
        "create table if not exists bench_baseline (id bigserial primary key, body text)"
    )

    async def insert(i: int) -> None:
        await pool.execute("insert into bench_baseline (body) values ($1)", f"message {i}")

    try:
        before = await dbcost.read(db_url)
        seconds, latencies = await run_pool(list(range(n)), concurrency, insert)
    finally:
        await pool.close()
    after = await dbcost.read(db_url)  # the backends have exited: their WAL records counted
    return Run(seconds, latencies, dbcost.per_message(before, after, n), None, None)


async def bench_account(db_url: str, tag: str) -> str:
    """A fresh organization with a WhatsApp account of its own, for one run."""
    runtime = await Runtime.open(Settings(database_url=db_url, db_pool_min=1, db_pool_max=1))
    try:
        async with runtime.db.service_tx() as conn:
            org = await conn.fetchval(
                "insert into organizations (name, slug) values ('Bench', $1) returning id",
                f"bench-{tag}-{uuid.uuid4().hex[:6]}",
            )
            account = await conn.fetchval(
                "insert into channel_accounts (organization_id, channel, name, external_id)"
                " values ($1, 'whatsapp', 'Bench', $2) returning id",
                org,
                PHONE_NUMBER_ID,
            )
            await conn.execute(
                "insert into private.channel_credentials (channel_account_id, secrets)"
                " values ($1, $2)",
                account,
                {"app_secret": APP_SECRET, "access_token": "x", "verify_token": "bench-verify"},
            )
    finally:
        await runtime.close()
    return str(account)


def deliveries(
    n: int, per_webhook: int, senders: int, pace: int = PACE
) -> list[tuple[bytes, dict[str, str]]]:
    """The signed deliveries carrying n messages, `per_webhook` in each."""
    bodies = [webhook(i, min(per_webhook, n - i), senders, pace) for i in range(0, n, per_webhook)]
    return [
        (body, {"x-hub-signature-256": sign(body, APP_SECRET), "content-type": "application/json"})
        for body in bodies
    ]


async def check_stored(db_url: str, account: str, n: int) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        stored = await conn.fetchval(
            "select count(*) from messages where channel_account_id = $1", uuid.UUID(account)
        )
    finally:
        await conn.close()
    if stored != n:
        raise RuntimeError(f"{stored} messages stored, expected {n}")


async def handler(
    db_url: str, n: int, concurrency: int, senders: int, per_webhook: int = 1, pace: int = PACE
) -> Run:
    """In process: each request straight into the gateway's ASGI app."""
    account = await bench_account(db_url, f"asgi-{per_webhook}")
    path = f"/functions/v1/whatsapp-webhook/{account}"
    jobs = deliveries(n, per_webhook, senders, pace)
    settings = Settings(database_url=db_url, db_pool_min=concurrency, db_pool_max=concurrency)
    runtime = await Runtime.open(settings)
    try:
        gateway = Gateway(settings, runtime=runtime)
        prepare_heap_for_serving()  # as the server's startup does (Gateway lifespan)

        async def deliver(delivery: tuple[bytes, dict[str, str]]) -> None:
            status, answer = await post(gateway, path, *delivery)
            if status != 200 or json.loads(answer)["failed"]:
                raise RuntimeError(f"unexpected answer: {status} {answer!r}")

        before, cpu = await dbcost.read(db_url), time.process_time()
        seconds, latencies = await run_pool(jobs, concurrency, deliver)
        server_cpu = time.process_time() - cpu  # the app runs in this process: the server's
    finally:
        await runtime.close()
    after = await dbcost.read(db_url)
    await check_stored(db_url, account, n)
    return Run(seconds, latencies, dbcost.per_message(before, after, n), server_cpu, None)


async def sql_alone(db_url: str, n: int, senders: int, pace: int = PACE) -> tuple[float, str]:
    """The database's part alone: the deliveries the webhook hands the database (one
    message each, 4 per call as the coalescer batches them), replayed by a loop in one
    backend, a commit per call. Neither the server nor a network is in it, and no locks
    are waited on: the steadiest CPU figure on a shared machine. Backend CPU ms per
    message, and the WAL line."""
    account = uuid.UUID(await bench_account(db_url, "sql"))
    conn = await asyncpg.connect(db_url)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    read = (await load_versioned(conn=conn, account_ids=[account]))[account]
    channel = channel_named("whatsapp")
    stored = [
        pipeline.prepare(channel, read.account, request, version=read.version).sql()
        for request in (
            WebhookRequest("POST", "https://bench/", headers, {}, body)
            for body, headers in deliveries(n, 1, senders, pace)
        )
    ]
    await conn.execute("create temp table bench_calls (n integer, deliveries jsonb)")
    calls = [(i, stored[i : i + 4]) for i in range(0, n, 4)]
    await conn.executemany("insert into bench_calls values ($1, $2)", calls)
    before, cpu = await dbcost.read(db_url), dbcost.tree_cpu_seconds(conn.get_server_pid())
    await conn.execute(
        "do $$ declare c record; begin"
        " for c in select deliveries from bench_calls order by n loop"
        " perform app.receive_inbound_deliveries(c.deliveries); commit; end loop; end $$"
    )
    cpu = dbcost.tree_cpu_seconds(conn.get_server_pid()) - cpu
    await conn.close()
    after = await dbcost.read(db_url)
    await check_stored(db_url, str(account), n)
    return cpu / n * 1000, dbcost.per_message(before, after, n)


async def over_http(
    db_url: str, n: int, concurrency: int, senders: int, command: str, pace: int = PACE
) -> Run:
    """The server in its own process, as deployed; the load from another, over HTTP."""
    account = await bench_account(db_url, "http")
    path = f"/functions/v1/whatsapp-webhook/{account}"
    requests = [serving.http_request(path, *d) for d in deliveries(n, 1, senders, pace)]
    async with serving.server(db_url, command=command, pool=concurrency) as server:
        before, cpu = await dbcost.read(db_url), server.cpu_seconds()
        result = await serving.load(server.port, requests, concurrency)
        server_cpu = server.cpu_seconds() - cpu
    after = await dbcost.read(db_url)  # the server has stopped: its backends are counted
    if result["error_count"]:
        raise RuntimeError(f"{result['error_count']} unexpected answers: {result['errors']}")
    await check_stored(db_url, account, n)
    return Run(
        result["seconds"],
        result["latencies"],
        dbcost.per_message(before, after, n),
        server_cpu,
        result["cpu_seconds"],
        dbcost.rows_per_message(before, after, n),
        dbcost.cpu_seconds(before, after),
    )


async def post(app: ASGIApp, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """One request straight into the ASGI app, as the server hands it over: the
    load generator's own HTTP client would otherwise spend the cores measured."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": "POST", "scheme": "https", "path": path, "raw_path": path.encode(),
        "root_path": "", "query_string": b"", "client": ("127.0.0.1", 443),
        "server": ("bench", 443),
        "headers": [(k.encode(), v.encode()) for k, v in
                    {**headers, "content-length": str(len(body))}.items()],
    }  # fmt: skip
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status, chunks = 0, []

    async def receive() -> Message:
        if messages:
            return messages.pop()
        connected: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        return await connected  # the client never goes away

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


@dataclass
class Run:
    seconds: float
    latencies: list[float]
    database: str  # WAL and PostgreSQL CPU per message
    server_cpu: float | None  # seconds, over the run
    loadgen_cpu: float | None
    rows: str = ""  # the tables written per message
    pg_cpu: float | None = None  # seconds, over the run


def line(label: str, n: int, run: Run, base_rate: float | None, target: str = "") -> str:
    rate = n / run.seconds
    p50, p99 = percentile(run.latencies, 50), percentile(run.latencies, 99)
    ratio = f"   ratio to baseline {rate / base_rate:.2f}" if base_rate else ""
    verdict = ""
    if target:
        met = "met" if rate >= 1000 and p99 < 50 else "NOT met"
        verdict = f"   {target} {met}"
    cpu = []
    if run.server_cpu is not None:
        # In process, the app shares the bench's process with the calls into it.
        who = "server" if run.loadgen_cpu is not None else "app and caller"
        cpu.append(f"{who} {run.server_cpu / n * 1000:.2f} ms")
    if run.loadgen_cpu is not None:
        cpu.append(f"load generator {run.loadgen_cpu / n * 1000:.2f} ms")
    cpu_line = f"CPU per message: {', '.join(cpu)}" if cpu else ""
    if run.pg_cpu is not None and run.server_cpu is not None and run.loadgen_cpu is not None:
        # All three share the machine's cores: their CPU per message bounds the rate.
        total = (run.pg_cpu + run.server_cpu + run.loadgen_cpu) / n
        cores = os.cpu_count() or 1
        cpu_line += f"; with PostgreSQL, {total * 1000:.2f} ms in all"
        cpu_line += f": at most {cores / total:.0f} msg/s on {cores} cores"
    return (
        f"{label:<44}{rate:7.0f} msg/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms{ratio}{verdict}\n"
        f"{'':<44}{run.database}"
        + (f"\n{'':<44}{cpu_line}" if cpu_line else "")
        + (f"\n{'':<44}{run.rows}" if run.rows else "")
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--senders", type=int, default=1000, help="distinct senders")
    parser.add_argument(
        "--pace",
        type=int,
        default=PACE,
        help="messages per second of the provider's clock (1: a repeat sender's next"
        " message `senders` seconds later, as before)",
    )
    parser.add_argument(
        "--batch", type=int, default=5, help="messages per webhook in the batched run"
    )
    parser.add_argument(
        "--server",
        action="append",
        help="a server command for the HTTP mode, with {port}; repeat it to compare stacks"
        " in one run (default: connectgain serve)",
    )
    parser.add_argument("--http-only", action="store_true", help="skip the in-process runs")
    parser.add_argument("--db-url")
    args = parser.parse_args()
    n, c = args.messages, args.concurrency
    servers: list[str] = args.server or [serving.SERVE]
    async with bench_database(args.db_url) as db_url:
        base = await baseline(db_url, n, c)
        pers = () if args.http_only else (1, args.batch)
        p = args.pace
        alone = None if args.http_only else await sql_alone(db_url, n, args.senders, p)
        in_process = [(per, await handler(db_url, n, c, args.senders, per, p)) for per in pers]
        http = [await over_http(db_url, n, c, args.senders, cmd, p) for cmd in servers]
    print(
        f"messages: {n} ({args.senders} distinct senders, {n - args.senders} repeats,"
        f" {args.pace} per second of provider time), concurrency {c}"
    )
    base_rate = n / base.seconds
    print(line("baseline   bare inserts, one per transaction", n, base, None))
    target = "target (>= 1000/s, p99 < 50 ms)"
    if alone is not None:
        print(f"SQL alone  app.receive_inbound_deliveries in a loop, 4 per call: backend CPU"
              f" {alone[0]:.2f} ms per message\n{'':<44}{alone[1]}")  # fmt: skip
    for per, run in in_process:
        # With several per delivery the latency is a delivery's: c × per messages in flight.
        label = f"in-process whatsapp-webhook, {per} per delivery"
        print(line(label, n, run, base_rate, target if per == 1 else f"({c * per} in flight)"))
    for command, run in zip(servers, http, strict=True):
        print(line("HTTP       whatsapp-webhook, 1 per delivery", n, run, base_rate, target))
        print(f"{'':<44}server: {command.replace(sys.executable, 'python')}")


if __name__ == "__main__":
    asyncio.run(main())
