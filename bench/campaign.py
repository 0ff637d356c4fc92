"""A campaign's dispatch against a local fake provider with a rate cap.

    .venv/bin/python bench/campaign.py [--recipients 100000] [--rate 300] [--dispatchers 4]
                                       [--batch 200] [--db-url URL]

`--recipients` contacts (loaded with COPY) in one WhatsApp template campaign whose
body variable is each contact's first name, the account's cap `--rate` per second,
sent by dispatchers in this process as the served function runs them (uvloop, the
runtime's HTTP client);
the WhatsApp Graph API is a fake in a process of its own, over real HTTP, which
records each send's recipient and arrival time. Printed: the achieved rate (sends
over the span from the first send to the last) as a ratio of the cap, the peak over
any 1-second window of arrivals (never above the cap), and duplicates (recipients
sent twice: 0). Then the same with
one of the dispatchers killed (its task cancelled) halfway: the others resume its
claimed recipients once they are orphaned, and duplicates stay 0; the messages it
had taken for sending stay unsent (never sent twice).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx
import uvloop

from bench.database import bench_database, new_org, new_user
from shared.campaigns.pace import Place
from shared.campaigns.runs import run
from shared.campaigns.snapshot import start_campaign
from shared.runtime import Runtime
from shared.settings import Settings
from shared.tooling.cluster import free_port

PHONE_ID = "109000000000001"
# Per provider attempt: seconds waiting for a place in the pacing window, and from the
# place to the request's write (both told by httpcore's trace).
WAITED: list[float] = []
LAG: list[float] = []
WRITTEN: list[float] = []  # when each attempt's request was written (time.time())


def measure_pacing() -> None:
    """Wrap the pacer's places to note each attempt's wait and lag."""
    admit, written = Place.admit, Place.written
    admitted: dict[int, float] = {}

    async def measured_admit(self: Place) -> None:
        asked = time.monotonic()
        await admit(self)
        admitted.setdefault(id(self), time.monotonic())
        WAITED.append(admitted[id(self)] - asked)

    def measured_written(self: Place) -> None:
        if (at := admitted.pop(id(self), None)) is not None:
            LAG.append(time.monotonic() - at)
            WRITTEN.append(time.time())
        written(self)

    Place.admit = measured_admit  # type: ignore[method-assign]
    Place.written = measured_written  # type: ignore[method-assign]


def percentiles(values: list[float]) -> str:
    values = sorted(values) or [0.0]
    at = [values[min(len(values) - 1, int(q * len(values)))] * 1000 for q in (0.5, 0.99)]
    return f"p50 {at[0]:.1f} ms, p99 {at[1]:.1f} ms, max {values[-1] * 1000:.1f} ms"


async def campaign(conn: asyncpg.Connection, n: int, rate: float) -> tuple[uuid.UUID, uuid.UUID]:
    org = await new_org(conn, await new_user(conn, f"{uuid.uuid4().hex}@bench.example"), "Bench")
    account = await conn.fetchval(
        "insert into channel_accounts (organization_id, channel, name, external_id, settings)"
        " values ($1, 'whatsapp', 'Bench', $2, $3::jsonb) returning id",
        org,
        PHONE_ID,
        json.dumps({"campaign_rate": rate}),
    )
    await conn.execute(
        "insert into private.channel_credentials (channel_account_id, secrets) values ($1, $2)",
        account,
        json.dumps({"access_token": "bench", "app_secret": "bench", "verify_token": "bench-v"}),
    )
    rows = io.BytesIO()
    for i in range(n):
        rows.write(f"{org}\tVIP {i}\t+49151{i:08d}\n".encode())
    rows.seek(0)
    await conn.copy_to_table("contacts", source=rows, columns=["organization_id", "name", "phone"])
    await conn.execute(
        "insert into whatsapp_templates (organization_id, channel_account_id, name, language,"
        " category, status, components) values ($1, $2, 'bench_sale', 'en', 'MARKETING',"
        " 'APPROVED', $3::jsonb)",
        org,
        account,
        json.dumps([{"type": "BODY", "text": "Hi {{1}}, spring sale!"}]),
    )
    made = await conn.fetchval(
        "insert into campaigns (organization_id, channel_account_id, name, template)"
        " values ($1, $2, 'Bench', $3::jsonb) returning id",
        org,
        account,
        json.dumps({"name": "bench_sale", "language": "en", "body": ["{{ contact.first_name }}"]}),
    )
    return org, made


def server_cpu(db_url: str) -> float:
    """CPU seconds the PostgreSQL server serving `db_url` has used (its postmaster, the
    backends that ended, the live ones); 0 when it is not a local server we can read."""
    port = str(urlsplit(db_url).port)
    tick = os.sysconf("SC_CLK_TCK")

    def stat(pid: str) -> list[str]:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()

    total, master = 0.0, None
    for proc in Path("/proc").iterdir():
        try:
            if master is None and proc.name.isdigit():
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
                if b"port=" + port.encode() in cmd and b"-D" in cmd:
                    master = proc.name
        except OSError:
            continue
    if master is None:
        return 0.0
    fields = stat(master)  # utime, stime, cutime, cstime: fields 14-17, here 11-14
    total += sum(int(f) for f in fields[11:15]) / tick
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and stat(proc.name)[1] == master:
                total += sum(int(f) for f in stat(proc.name)[11:13]) / tick
        except OSError:
            continue
    return total


def peak(times: list[float]) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


# ---- the fake Graph API, in a process of its own -------------------------------------

_REPLY = (
    '{"messaging_product":"whatsapp","contacts":[{"input":"%s","wa_id":"%s"}],'
    '"messages":[{"id":"wamid.%s"}]}'
)


async def _answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: list[tuple[str, float]]
) -> None:
    """HTTP/1.1 keep-alive by hand: a POST is a send (its recipient and time are kept),
    GET /sent hands over the sends so far and forgets them."""
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            arrived = time.time()  # as soon as the whole request is read
            if head.startswith(b"GET"):
                out = "".join(f"{to}\t{at}\n" for to, at in log).encode()
                log.clear()
            else:
                to = json.loads(body)["to"]
                log.append((to, arrived))
                out = (_REPLY % (to, to, uuid.uuid4().hex)).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(out), out)
            )
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve_provider(port: int) -> None:
    log: list[tuple[str, float]] = []
    server = await asyncio.start_server(lambda r, w: _answer(r, w, log), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


class Provider:
    """The fake provider's process: the Graph URL the channel uses, its CPU, its log."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-provider", str(self.port)]
        )
        # it stamps each send as it reads it: scheduled ahead of the busy dispatchers and
        # database (when allowed: real-time, else a higher priority), its stamps are when
        # the sends arrived, not a backlog's
        try:
            os.sched_setscheduler(self.process.pid, os.SCHED_FIFO, os.sched_param(1))
        except PermissionError:
            with contextlib.suppress(PermissionError):
                os.setpriority(os.PRIO_PROCESS, self.process.pid, -10)
        os.environ["CONNECTGAIN_META_GRAPH_URL"] = f"http://127.0.0.1:{self.port}/v21.0"

    async def ready(self) -> None:
        while True:
            try:
                await self.sent()
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)

    async def sent(self) -> list[tuple[str, float]]:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{self.port}/sent")).text
        return [(to, float(at)) for to, at in (line.split("\t") for line in text.splitlines())]

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:13]) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


# ---- the runs ---------------------------------------------------------------------------


async def top_functions(conn: asyncpg.Connection, sends: int) -> str:
    """The PL/pgSQL functions (mostly triggers) by self time per send, since the last call."""
    await asyncio.sleep(1.1)  # the backends flush their function statistics within a second
    rows = await conn.fetch(
        "select schemaname || '.' || funcname as name, sum(self_time) as ms"
        " from pg_stat_user_functions group by 1 order by 2 desc limit 8"
    )
    await conn.execute("select pg_stat_reset()")
    return ", ".join(f"{r['name']} {1000 * r['ms'] / sends:.0f}" for r in rows)


async def once(
    runtime: Runtime, provider: Provider, db_url: str, args: argparse.Namespace, kill: bool
) -> dict[str, Any]:
    conn = await asyncpg.connect(db_url)
    try:
        org, made = await campaign(conn, args.recipients, args.rate)
        async with runtime.db.service_tx() as tx:
            await start_campaign(conn=tx, organization_id=org, campaign_id=made)
        await provider.sent()  # the log starts empty
        await conn.execute("select pg_stat_reset()")
        WAITED.clear()
        LAG.clear()
        WRITTEN.clear()
        began = time.monotonic()
        cpu = (time.process_time(), server_cpu(db_url), provider.cpu())

        async def dispatcher() -> None:
            while await conn_status(db_url, made) == "running":
                counts = await run(runtime, batch=args.batch, seconds=5)
                if not counts["sent"]:  # nothing to claim: orphans not yet orphaned
                    await asyncio.sleep(0.2)

        tasks = [asyncio.create_task(dispatcher()) for _ in range(args.dispatchers)]
        if kill:  # halfway, one dispatcher dies mid-batch and a new one starts in its place
            await asyncio.sleep(args.recipients / args.rate / 2)
            tasks[0].cancel()
            tasks.append(asyncio.create_task(dispatcher()))
        await asyncio.gather(*tasks, return_exceptions=True)
        elapsed = time.monotonic() - began
        ours = time.process_time() - cpu[0]
        server, fake = server_cpu(db_url) - cpu[1], provider.cpu() - cpu[2]
        sent = await provider.sent()
        functions = await top_functions(conn, len(sent))
        times = [t for _, t in sent]
        counts = Counter(to for to, _ in sent)
        unsent = await conn.fetch(
            "select r.status, m.status::text as message, m.error ->> 'code' as code, count(*)"
            " from campaign_recipients r left join messages m on m.id = r.message_id"
            " where r.campaign_id = $1 and r.status not in ('sent', 'delivered', 'read')"
            " group by 1, 2, 3",
            made,
        )
        lost = sum(r["count"] for r in unsent)
    finally:
        await conn.close()
    span = max(times) - min(times)
    figures = {
        "sent": len(sent),
        "span": span,
        "elapsed": elapsed,
        "ratio": len(sent) / span / args.rate,
        "peak": peak(times),
        "peak_written": peak(WRITTEN),
        "duplicates": sum(c - 1 for c in counts.values()),
        "unsent": lost,
        "why": ", ".join(f"{r['count']} {r['status']}/{r['message']}/{r['code']}" for r in unsent),
        "dispatchers_ms": 1000 * ours / len(sent),
        "postgres_ms": 1000 * server / len(sent),
        "provider_ms": 1000 * fake / len(sent),
        "waited": percentiles(WAITED),
        "lag": percentiles(LAG),
    }
    print(
        f"{'one dispatcher killed halfway' if kill else 'all dispatchers run'}: {figures}\n"
        f"  PostgreSQL functions, microseconds of self time per send: {functions}",
        flush=True,
    )
    return figures


def summary(args: argparse.Namespace, runs: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"Summary: {args.recipients} recipients, cap {args.rate:.0f}/s,"
        f" {args.dispatchers} dispatchers, load {os.getloadavg()[0]:.2f}"
    ]
    for label, f in runs.items():
        lines.append(
            f"  {label}: achieved {f['sent'] / f['span']:.1f}/s = {f['ratio']:.3f} of the cap"
            f" (target >= 0.95); peak 1-s window {f['peak']} (cap {args.rate:.0f};"
            f" {f['peak_written']} as written);"
            f" duplicates {f['duplicates']}; not sent {f['unsent']} ({f['why'] or 'none'});"
            f" {f['sent']} sends in {f['span']:.1f} s ({f['elapsed']:.1f} s in all);"
            f" CPU per send: PostgreSQL {f['postgres_ms']:.2f} ms,"
            f" dispatchers {f['dispatchers_ms']:.2f} ms, fake provider {f['provider_ms']:.2f} ms;"
            f" per attempt, waited for the window {f['waited']}, then to the write {f['lag']}"
        )
    return "\n".join(lines)


async def conn_status(db_url: str, made: uuid.UUID) -> str:
    conn = await asyncpg.connect(db_url)
    try:
        status: str = await conn.fetchval("select status from campaigns where id = $1", made)
        return status
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--dispatchers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--db-url")
    parser.add_argument("--serve-provider", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_provider:
        return await serve_provider(args.serve_provider)
    measure_pacing()
    provider = Provider()
    try:
        async with bench_database(args.db_url) as db_url:
            admin = await asyncpg.connect(db_url)
            await admin.execute(
                f"alter database {urlsplit(db_url).path[1:]} set track_functions = 'pl'"
            )
            await admin.close()
            settings = Settings(
                mode="local",
                database_url=db_url,
                db_pool_max=args.dispatchers * 2 + 2,
                claim_seconds=5,
                _env_file=None,  # type: ignore[call-arg]
            )
            # the functions' own HTTP client, as deployed: its pool keeps httpx's 20
            # connections alive (each one kept costs every request a poll of its socket)
            runtime = await Runtime.open(settings)
            await provider.ready()
            try:
                runs = {
                    "normal": await once(runtime, provider, db_url, args, kill=False),
                    "killed and restarted": await once(runtime, provider, db_url, args, kill=True),
                }
            finally:
                await runtime.close()
        print(summary(args, runs), flush=True)
    finally:
        provider.stop()


if __name__ == "__main__":
    uvloop.run(main())  # the event loop `connectgain serve` runs the functions in
