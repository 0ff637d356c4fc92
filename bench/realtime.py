"""Realtime latency: a signed WhatsApp webhook's inbox change reaching subscribed agents.

    .venv/bin/python bench/realtime.py [--subscribers 50] [--events 200] [--rate 10]
                                       [--db-url URL]

`connectgain serve` runs in its own process (the real stack: uvicorn, the gateway, the
local Realtime server, its feed polling realtime.messages). `--subscribers` agents of
one organization each hold a socket (vsn 2.0.0, as supabase-js) joined to the private
`org:<id>:inbox` channel with their own access token. The bench then posts `--events`
signed WhatsApp text webhooks, `--rate` a second, through the gateway over HTTP; the
inbox triggers broadcast the new message with realtime.broadcast_changes. Latency is
per subscriber and event: from the webhook's request being sent to that subscriber
reading the message's broadcast (the webhook's own handling and commit included).
Prints p50/p95/p99 (target p99 < 100 ms locally) of that, of the webhook's own answer
and of the time from its answer (the change committed) to the subscriber; the
server's CPU per event; and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench import serving
from bench.database import bench_database, percentile
from bench.ingest import APP_SECRET, bench_account, webhook
from shared.auth import mint_access_token
from shared.channels.meta.graph import sign
from shared.settings import Settings


async def members(db_url: str, account: str, n: int) -> tuple[str, list[uuid.UUID]]:
    """`n` agents of the account's organization; returns the organization and them."""
    conn = await asyncpg.connect(db_url)
    try:
        org = await conn.fetchval(
            "select organization_id from channel_accounts where id = $1", uuid.UUID(account)
        )
        users = [uuid.uuid4() for _ in range(n)]
        await conn.executemany(
            "insert into auth.users (id, email) values ($1, $2)",
            [(u, f"agent-{u.hex[:8]}@bench.example") for u in users],
        )
        await conn.executemany(
            "insert into organization_members (organization_id, user_id, role)"
            " values ($1, $2, 'agent')",
            [(org, u) for u in users],
        )
    finally:
        await conn.close()
    return str(org), users


def broadcast_body(frame: bytes) -> str | None:
    """The message body a kind 4 frame carries, if it is a new inbox message's."""
    sizes, offset = frame[1:4], 5
    offset += sum(sizes)
    payload = json.loads(frame[offset:])
    if payload.get("table") != "messages" or payload.get("operation") != "INSERT":
        return None
    body = payload["record"]["body"]
    return body if isinstance(body, str) else None


async def subscriber(
    url: str, topic: str, token: str, heard: dict[str, list[float]], ready: asyncio.Event
) -> ClientConnection:
    ws = await connect(url, max_size=None)
    join = {"config": {"private": True, "broadcast": {"self": False, "ack": False}},
            "access_token": token}  # fmt: skip
    await ws.send(json.dumps(["1", "1", topic, "phx_join", join]))
    reply = json.loads(await ws.recv())
    if reply[4]["status"] != "ok":
        raise RuntimeError(f"the join was refused: {reply}")

    async def listen() -> None:
        async for frame in ws:
            if isinstance(frame, bytes) and (body := broadcast_body(frame)) is not None:
                heard.setdefault(body, []).append(time.perf_counter())

    asyncio.create_task(listen())  # noqa: RUF006 (ends with its socket)
    ready.set()
    return ws


async def run(db_url: str, n_subscribers: int, n_events: int, rate: float) -> None:
    os.environ["CONNECTGAIN_SCHEDULE"] = "off"  # the scheduled jobs are not measured here
    account = await bench_account(db_url, "realtime")
    org, users = await members(db_url, account, n_subscribers)
    settings = Settings(database_url=db_url)
    topic = f"realtime:org:{org}:inbox"
    heard: dict[str, list[float]] = {}
    async with serving.server(db_url, command=serving.SERVE, pool=10) as server:
        settings = settings.on_ports(api_port=server.port)
        url = f"ws://127.0.0.1:{server.port}/realtime/v1/websocket"
        url += f"?apikey={settings.local_key('anon')}&vsn=2.0.0"
        sockets = []
        for user in users:
            token = mint_access_token(settings, user_id=user, email=None)
            sockets.append(await subscriber(url, topic, token, heard, asyncio.Event()))
        sent: dict[str, float] = {}
        answered: dict[str, float] = {}
        path = f"http://127.0.0.1:{server.port}/functions/v1/whatsapp-webhook/{account}"
        cpu = server.cpu_seconds()
        async with httpx.AsyncClient() as http:
            for n in range(n_events):
                body = webhook(n, 1, 1000)
                headers = {"x-hub-signature-256": sign(body, APP_SECRET),
                           "content-type": "application/json"}  # fmt: skip
                sent[f"message {n}"] = time.perf_counter()
                answer = await http.post(path, content=body, headers=headers)
                if answer.status_code != 200:
                    raise RuntimeError(f"the webhook answered {answer.status_code}")
                answered[f"message {n}"] = time.perf_counter()
                await asyncio.sleep(1 / rate)
        await asyncio.sleep(0.5)  # the last broadcasts
        server_cpu = server.cpu_seconds() - cpu
        for ws in sockets:
            await ws.close()
    deliveries = [(body, at) for body, times in heard.items() if body in sent for at in times]
    latencies = [(at - sent[body]) * 1000 for body, at in deliveries]
    after_answer = [(at - answered[body]) * 1000 for body, at in deliveries]
    webhook_ms = [(answered[body] - sent[body]) * 1000 for body in sent]
    expected = n_subscribers * n_events
    load = os.getloadavg()
    print(f"{n_subscribers} subscribers x {n_events} events at {rate:g}/s: "
          f"{len(latencies)}/{expected} deliveries")  # fmt: skip
    print("                         p50      p95      p99      max (ms)")
    for label, samples in (
        ("webhook sent → heard", latencies),
        ("webhook answered", webhook_ms),
        ("answered → heard", after_answer),
    ):
        figures = [percentile(samples, p) for p in (50, 95, 99)] + [max(samples)]
        print(f"  {label:<21}" + "".join(f"{f:9.1f}" for f in figures))
    print(f"  server CPU per event (webhook + fan-out): {server_cpu / n_events * 1000:.1f} ms")
    print(f"  load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if len(latencies) != expected:
        raise SystemExit("some deliveries were lost")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="webhooks a second")
    parser.add_argument("--db-url")
    args = parser.parse_args()
    async with bench_database(args.db_url) as db_url:
        await run(db_url, args.subscribers, args.events, args.rate)


if __name__ == "__main__":
    asyncio.run(main())
