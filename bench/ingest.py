"""Inbound throughput: signed WhatsApp webhooks through the real handler into the real database.

    .venv/bin/python bench/ingest.py [--messages 5000] [--concurrency 16] [--db-url URL]

Each request goes straight into the gateway's ASGI app, as the HTTP server hands
it over, so the load generator spends no HTTP client's CPU on the cores measured.
Against a baseline in the same run: the same number of bare single-row inserts,
one transaction each, through asyncpg with the same concurrency. Prints
messages/s for both, the ratio, and the handler's latency percentiles.
Target: at least 1,000 messages/s on 2 cores and p99 handler latency under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from starlette.types import ASGIApp, Message

from bench.database import bench_database, percentile
from shared.channels.meta.graph import sign
from shared.runtime import Runtime
from shared.settings import Settings
from shared.tooling.gateway import Gateway
from shared.web import prepare_heap_for_serving

PHONE_NUMBER_ID = "106540352242922"
APP_SECRET = "bench-app-secret"


def webhook(first: int, count: int, senders: int) -> bytes:
    """Messages first … first+count-1, each from one of `senders` senders (new senders
    first, then repeats), in one delivery as Meta batches them under load."""
    ids = [str(351910000000 + n % senders) for n in range(first, first + count)]
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": f"Sender {wa_id}"}, "wa_id": wa_id}
                         for wa_id in dict.fromkeys(ids)],
            "messages": [{"from": wa_id, "id": f"wamid.BENCH{n:08d}",
                          "timestamp": str(1731585600 + n), "type": "text",
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


async def baseline(db_url: str, n: int, concurrency: int) -> tuple[float, list[float]]:
    pool = await asyncpg.create_pool(db_url, min_size=concurrency, max_size=concurrency)
    await pool.execute(
        "create table if not exists bench_baseline (id bigserial primary key, body text)"
    )

    async def insert(i: int) -> None:
        await pool.execute("insert into bench_baseline (body) values ($1)", f"message {i}")

    try:
        return await run_pool(list(range(n)), concurrency, insert)
    finally:
        await pool.close()


async def handler(
    db_url: str, n: int, concurrency: int, senders: int, per_webhook: int = 1
) -> tuple[float, list[float]]:
    settings = Settings(database_url=db_url, db_pool_min=concurrency, db_pool_max=concurrency)
    runtime = await Runtime.open(settings)
    async with runtime.db.service_tx() as conn:
        org = await conn.fetchval(
            "insert into organizations (name, slug) values ('Bench', $1) returning id",
            f"bench-{per_webhook}-{uuid.uuid4().hex[:6]}",
        )
        account = await conn.fetchval(
            "insert into channel_accounts (organization_id, channel, name, external_id)"
            " values ($1, 'whatsapp', 'Bench', $2) returning id",
            org,
            PHONE_NUMBER_ID,
        )
        await conn.execute(
            "insert into private.channel_credentials (channel_account_id, secrets) values ($1, $2)",
            account,
            {"app_secret": APP_SECRET, "access_token": "x", "verify_token": "bench-verify"},
        )
    bodies = [webhook(i, min(per_webhook, n - i), senders) for i in range(0, n, per_webhook)]
    path = f"/functions/v1/whatsapp-webhook/{account}"
    gateway = Gateway(settings, runtime=runtime)
    prepare_heap_for_serving()  # as the server's startup does (Gateway lifespan)

    async def deliver(body: bytes) -> None:
        signature = sign(body, APP_SECRET)
        headers = {"x-hub-signature-256": signature, "content-type": "application/json"}
        status, answer = await post(gateway, path, body, headers)
        if status != 200 or json.loads(answer)["failed"]:
            raise RuntimeError(f"unexpected answer: {status} {answer!r}")

    try:
        result = await run_pool(bodies, concurrency, deliver)
        stored = await runtime.db.pool.fetchval(
            "select count(*) from messages where channel_account_id = $1", account
        )
        if stored != n:
            raise RuntimeError(f"{stored} messages stored, expected {n}")
        return result
    finally:
        await runtime.close()


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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--senders", type=int, default=1000, help="distinct senders")
    parser.add_argument(
        "--batch", type=int, default=5, help="messages per webhook in the batched run"
    )
    parser.add_argument("--db-url")
    args = parser.parse_args()
    n = args.messages
    async with bench_database(args.db_url) as db_url:
        base_seconds, base_latencies = await baseline(db_url, n, args.concurrency)
        runs = [
            (per, *await handler(db_url, n, args.concurrency, args.senders, per))
            for per in (1, args.batch)
        ]
    print(
        f"messages: {n} ({args.senders} distinct senders, {n - args.senders} repeats), "
        f"concurrency {args.concurrency}"
    )
    base_rate = n / base_seconds
    base_p50, base_p99 = percentile(base_latencies, 50), percentile(base_latencies, 99)
    print(
        f"baseline  bare inserts, one per transaction  {base_rate:7.0f} rows/s      "
        f"p50 {base_p50:6.2f} ms  p99 {base_p99:6.2f} ms"
    )
    for per, seconds, latencies in runs:
        rate, p99 = n / seconds, percentile(latencies, 99)
        # The target is for one message per delivery. With several, the latency is a
        # delivery's: `concurrency` × `per` messages are in flight at once.
        verdict = "met" if rate >= 1000 and p99 < 50 else "NOT met"
        target = (
            f"target (>= 1000/s, p99 < 50 ms) {verdict}"
            if per == 1
            else f"({args.concurrency * per} messages in flight)"
        )
        print(
            f"handler   whatsapp-webhook, {per} per delivery   {rate:7.0f} messages/s  "
            f"p50 {percentile(latencies, 50):6.2f} ms  p99 {p99:6.2f} ms"
            f"   ratio to baseline {rate / base_rate:.2f}   {target}"
        )


if __name__ == "__main__":
    asyncio.run(main())
