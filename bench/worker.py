"""The events worker's throughput and lag, against a bare claim-and-mark baseline.

    .venv/bin/python bench/worker.py [--events 20000] [--rate 500] [--seconds 10] [--db-url URL]

Throughput: `--events` outbox events loaded with COPY, then drained three ways in
the same run, each from the same backlog:

- baseline: the bare claim-and-mark loop, `update outbox_events set processed_at`
  on batches claimed with FOR UPDATE SKIP LOCKED, nothing else;
- worker, no-op consumer: shared.events.worker.run with a consumer that fans each
  event out to one delivery and finishes it at once (dispatch, claim with a lease,
  record: the worker's own cost);
- worker, webhooks: the real webhooks consumer, one subscribed endpoint answered
  200 by respx at the HTTP layer (signing, the HTTP client, the attempt log and
  the endpoint's health included).

Lag: events inserted one per transaction at `--rate` per second for `--seconds`
while a worker polls (run, then 50 ms when idle); the lag is from the event's
commit (its created_at) to its handling (the consumer's clock, or the webhook
attempt's time), p50/p99. Under the deployed schedule (every minute) add up to
the minute between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import respx

from bench.database import bench_database, percentile
from shared.events import egress, signing, worker
from shared.events.base import Claimed, Consumer, Result
from shared.events.sender import WebhookConsumer
from shared.runtime import Runtime
from shared.settings import Settings

HOOK = "https://hooks.bench.example/in"
BATCH = 200


class NoOp(Consumer):
    name: ClassVar[str] = "bench-noop"

    def __init__(self) -> None:
        super().__init__()
        self.lags: list[float] = []

    async def handle(
        self, *, runtime: Runtime, deliveries: Sequence[Claimed], now: datetime, deadline: float
    ) -> list[Result]:
        at = datetime.now(UTC)
        self.lags.extend((at - d.event.created_at).total_seconds() for d in deliveries)
        return [Result("done")] * len(deliveries)


async def load(conn: asyncpg.Connection, org: uuid.UUID, n: int) -> None:
    rows = io.BytesIO()
    for i in range(n):
        rows.write(f'{org}\tcontact.created\t{{"n": {i}}}\n'.encode())
    rows.seek(0)
    await conn.copy_to_table(
        "outbox_events", source=rows, columns=["organization_id", "event_type", "payload"]
    )


async def baseline(conn: asyncpg.Connection) -> None:
    while True:
        done = await conn.fetchval(
            """
            with due as (select id from public.outbox_events where processed_at is null
                          order by id limit $1 for update skip locked),
                 marked as (update public.outbox_events e set processed_at = now()
                              from due where e.id = due.id returning 1)
            select count(*) from marked
            """,
            BATCH,
        )
        if done == 0:
            return


async def drain(runtime: Runtime, consumers: Sequence[Consumer]) -> None:
    while (await worker.run(runtime, consumers=consumers, limit=BATCH)).claimed:
        pass


def cpu() -> float:
    times = os.times()
    return times.user + times.system


async def timed(name: str, events: int, work: Any) -> float:
    started, cpu0 = time.perf_counter(), cpu()
    await work
    elapsed, used = time.perf_counter() - started, cpu() - cpu0
    rate = events / elapsed
    print(
        f"  {name:<28} {rate:>9,.0f} events/s   {used / events * 1e6:>6.0f} µs CPU/event (worker)"
    )
    return rate


async def lag(
    runtime: Runtime,
    conn: asyncpg.Connection,
    org: uuid.UUID,
    consumers: Sequence[Consumer],
    rate: int,
    seconds: float,
) -> None:
    stop = asyncio.Event()

    async def produce() -> None:
        for i in range(int(rate * seconds)):
            await conn.execute(
                "insert into outbox_events (organization_id, event_type, payload)"
                " values ($1, 'contact.created', '{}')",
                org,
            )
            await asyncio.sleep(max(0.0, (i + 1) / rate - (time.perf_counter() - started)))
        stop.set()

    async def poll() -> None:
        while True:
            summary = await worker.run(runtime, consumers=consumers, limit=BATCH)
            if stop.is_set() and summary.claimed == 0 and summary.dispatched == 0:
                return
            if summary.claimed == 0:
                await asyncio.sleep(0.05)

    started = time.perf_counter()
    await asyncio.gather(produce(), poll())


def show_lag(name: str, lags: list[float]) -> None:
    print(
        f"  {name:<28} p50 {percentile(lags, 50) * 1000:>6.1f} ms"
        f"   p99 {percentile(lags, 99) * 1000:>6.1f} ms   ({len(lags)} events)"
    )


async def bench(db_url: str, events: int, rate: int, seconds: float) -> None:
    settings = Settings(mode="local", database_url=db_url, _env_file=None)  # type: ignore[call-arg]
    runtime = await Runtime.open(settings)
    conn = await asyncpg.connect(db_url)
    try:
        org = await conn.fetchval(
            "insert into organizations (name, slug) values ('Bench', 'bench') returning id"
        )
        await conn.execute(
            "insert into webhook_endpoints (organization_id, url, events)"
            " values ($1, $2, '{contact.created}')",
            org,
            HOOK,
        )
        await conn.execute(
            "insert into private.webhook_secrets (endpoint_id, secret)"
            " select id, $1 from webhook_endpoints",
            signing.new_secret(),
        )
        print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (uptime), 2 cores shared")
        print(f"throughput, {events:,} events drained from a backlog:")
        await load(conn, org, events)
        base = await timed("baseline claim-and-mark", events, baseline(conn))
        noop = NoOp()
        await load(conn, org, events)
        mine = await timed("worker, no-op consumer", events, drain(runtime, [noop]))
        webhooks: list[Consumer] = [WebhookConsumer()]
        with respx.mock(assert_all_called=False) as router:
            router.post(HOOK).respond(200)
            egress.lookup = _public  # type: ignore[assignment]  # no DNS for the bench's host
            await load(conn, org, events // 4)
            hooks = await timed("worker, webhooks", events // 4, drain(runtime, webhooks))
            print(f"  ratio no-op/baseline {mine / base:.2f}, webhooks/baseline {hooks / base:.2f}")

            print(f"lag, {rate} events/s for {seconds:g} s, a polling worker:")
            noop.lags.clear()
            await lag(runtime, conn, org, [noop], rate, seconds)
            show_lag("no-op consumer", noop.lags)
            mark = await conn.fetchval("select coalesce(max(id), 0) from webhook_attempts")
            await lag(runtime, conn, org, webhooks, rate, seconds)
            rows = await conn.fetch(
                "select extract(epoch from a.attempted_at - e.created_at) as lag"
                " from webhook_attempts a join event_deliveries d on d.id = a.delivery_id"
                " join outbox_events e on e.id = d.event_id where a.id > $1",
                mark,
            )
            show_lag("webhooks", [float(r["lag"]) for r in rows])
        print(f"load after: {os.getloadavg()[0]:.2f}")
    finally:
        await conn.close()
        await runtime.close()


async def _public(host: str, port: int) -> list[str]:
    return ["93.184.215.14"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db-url", help="an existing empty database (default: a throwaway one)")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    async def go() -> None:
        async with bench_database(args.db_url) as url:
            await bench(url, args.events, args.rate, args.seconds)

    asyncio.run(go())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
