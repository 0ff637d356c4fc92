"""A campaign's dispatch against a local fake provider with a rate cap.

    .venv/bin/python bench/campaign.py [--recipients 100000] [--rate 1000] [--dispatchers 4]
                                       [--db-url URL]

`--recipients` contacts (loaded with COPY) in one WhatsApp template campaign whose
body variable is each contact's first name, the account's cap `--rate` per second;
the WhatsApp Graph API is answered by respx at the HTTP layer, which records each
send's recipient and time. Printed: the achieved rate (sends over the span from the
first send to the last) as a ratio of the cap, the peak over any 1-second window
(never above the cap), and duplicates (recipients sent twice: 0). Then the same with
one of the dispatchers killed (its task cancelled) halfway: the others resume its
claimed recipients once they are orphaned, and duplicates stay 0; the messages it
had taken for sending stay unsent (never sent twice).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import io
import json
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx
import respx

from bench.database import bench_database, new_org, new_user
from shared.campaigns.dispatch import run
from shared.campaigns.snapshot import start_campaign
from shared.runtime import Runtime
from shared.settings import Settings

PHONE_ID = "109000000000001"
GRAPH = f"https://graph.facebook.com/v21.0/{PHONE_ID}/messages"


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


async def once(runtime: Runtime, db_url: str, args: argparse.Namespace, kill: bool) -> None:
    conn = await asyncpg.connect(db_url)
    sent: list[tuple[str, float]] = []
    halfway = asyncio.Event()

    def reply(request: httpx.Request) -> httpx.Response:
        to = json.loads(request.content)["to"]
        sent.append((to, time.monotonic()))
        if len(sent) >= args.recipients // 2:
            halfway.set()
        return httpx.Response(
            200,
            json={
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": f"wamid.{uuid.uuid4().hex}"}],
            },
        )

    try:
        org, made = await campaign(conn, args.recipients, args.rate)
        async with runtime.db.service_tx() as tx:
            await start_campaign(conn=tx, organization_id=org, campaign_id=made)
        with respx.mock(assert_all_called=False) as router:
            router.post(GRAPH).mock(side_effect=reply)
            began = time.monotonic()
            cpu = (time.process_time(), server_cpu(db_url))

            async def dispatcher() -> None:
                while await conn_status(db_url, made) == "running":
                    counts = await run(runtime, batch=args.batch, seconds=5)
                    if not counts["sent"]:  # nothing to claim: orphans not yet orphaned
                        await asyncio.sleep(0.2)

            tasks = [asyncio.create_task(dispatcher()) for _ in range(args.dispatchers)]
            if kill:
                await halfway.wait()
                tasks[0].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            elapsed = time.monotonic() - began
            ours, server = time.process_time() - cpu[0], server_cpu(db_url) - cpu[1]
        times = [t for _, t in sent]
        counts = Counter(to for to, _ in sent)
        lost = await conn.fetchval(
            "select count(*) from campaign_recipients where campaign_id = $1"
            " and status not in ('sent', 'delivered', 'read')",
            made,
        )
        span = max(times) - min(times)
        label = "one dispatcher killed halfway" if kill else f"{args.dispatchers} dispatchers"
        print(
            f"{label}: {len(sent)} sent in {span:.1f} s (first to last send; {elapsed:.1f} s"
            f" in all) = {len(sent) / span:.0f}/s, {len(sent) / span / args.rate:.3f} of the cap"
            f" {args.rate:.0f}/s; peak 1-s window {peak(times)};"
            f" duplicates {sum(c - 1 for c in counts.values())};"
            f" not sent (taken by the killed one, never sent twice; or failed) {lost};"
            f" CPU per send: dispatchers {1000 * ours / len(sent):.2f} ms,"
            f" PostgreSQL {1000 * server / len(sent):.2f} ms",
            flush=True,
        )
    finally:
        await conn.close()


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
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--dispatchers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--db-url")
    args = parser.parse_args()
    async with bench_database(args.db_url) as db_url:
        settings = Settings(
            mode="local",
            database_url=db_url,
            db_pool_max=args.dispatchers * 2 + 2,
            claim_seconds=5,
            _env_file=None,  # type: ignore[call-arg]
        )
        runtime = await Runtime.open(settings)
        try:
            await once(runtime, db_url, args, kill=False)
            await once(runtime, db_url, args, kill=True)
        finally:
            await runtime.close()


if __name__ == "__main__":
    asyncio.run(main())
