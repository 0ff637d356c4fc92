"""Bot replies under load: from a customer's WhatsApp message to the bot's answer at the provider.

    .venv/bin/python bench/bots.py [--sessions 200] [--db-url URL]

The server runs as deployed (`connectgain serve`, its own process) with Meta's Graph
API pointed at a fake provider in this process (a minimal HTTP server that records
when each send for each recipient arrives). `--sessions` customers write at once,
each over real HTTP to the signed WhatsApp webhook:

- **baseline**: an organization without bots — the webhook's own latency (POST → 200);
- **start**: "hi" to an organization whose flow starts on it — the latency from the
  POST to the bot's greeting reaching the provider, and the webhook's own latency;
- **answer**: each customer answers the bot's question — POST to the bot's next message.

Printed: p50/p99 of each, in ms, with `uptime`'s load (target: p99 < 1 s locally).
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

from bench import serving
from bench.database import bench_database, percentile
from shared.channels.meta.graph import sign
from shared.tooling.cluster import free_port

APP_SECRET = "bench-app-secret"
FLOW = {
    "schema_version": 1,
    "variables": {"name": "text"},
    "nodes": [
        {"id": "start", "kind": "start"},
        {"id": "hello", "kind": "send_message", "text": "Hello!"},
        {"id": "ask", "kind": "ask", "text": "Your name?", "variable": "name"},
        {"id": "thanks", "kind": "send_message", "text": "Thanks, {{ name }}."},
    ],
    "edges": [
        {"from": "start", "to": "hello"},
        {"from": "hello", "to": "ask"},
        {"from": "ask", "to": "thanks"},
    ],
}


class FakeGraph:
    """Graph's send endpoint: answers as Meta documents a success, notes each text's arrival."""

    def __init__(self) -> None:
        self.arrived: dict[tuple[str, str], float] = {}
        self.waiters: dict[tuple[str, str], asyncio.Future[float]] = {}
        self.count = 0

    def wait(self, to: str, text: str) -> asyncio.Future[float]:
        key = (to, text)
        future = self.waiters.setdefault(key, asyncio.get_running_loop().create_future())
        if key in self.arrived and not future.done():
            future.set_result(self.arrived[key])
        return future

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = json.loads(await reader.readexactly(length))
                at = time.perf_counter()
                text = body.get("text", {}).get("body") or body.get("interactive", {}).get(
                    "body", {}
                ).get("text")
                key = (body["to"], text)
                self.arrived[key] = at
                if key in self.waiters and not self.waiters[key].done():
                    self.waiters[key].set_result(at)
                self.count += 1
                to = body["to"]
                answer = json.dumps(
                    {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                     "messages": [{"id": f"wamid.FAKE{self.count}"}]}
                ).encode()  # fmt: skip
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def account(conn: asyncpg.Connection, phone_id: str, *, bot: bool) -> str:
    org = await conn.fetchval(
        "insert into organizations (name, slug) values ('Bench', $1) returning id",
        f"bench-bots-{uuid.uuid4().hex[:8]}",
    )
    made = await conn.fetchval(
        "insert into channel_accounts (organization_id, channel, name, external_id)"
        " values ($1, 'whatsapp', 'Bench', $2) returning id",
        org,
        phone_id,
    )
    await conn.execute(
        "insert into private.channel_credentials (channel_account_id, secrets)"
        " values ($1, $2::jsonb)",
        made,
        json.dumps({"app_secret": APP_SECRET, "access_token": "x", "verify_token": "bench-verify"}),
    )
    if bot:
        flow = await conn.fetchval(
            "insert into bot_flows (organization_id, name, draft, triggers) values ($1, 'Bench',"
            " $2::jsonb, $3::jsonb) returning id",
            org,
            json.dumps(FLOW),
            json.dumps([{"type": "keyword", "keywords": ["hi"]}]),
        )
        version = await conn.fetchval(
            "insert into bot_flow_versions (organization_id, flow_id, version, graph)"
            " values ($1, $2, 1, $3::jsonb) returning id",
            org,
            flow,
            json.dumps(FLOW),
        )
        await conn.execute(
            "update bot_flows set published_version_id = $2, published_version = 1 where id = $1",
            flow,
            version,
        )
    return str(made)


def delivery(phone_id: str, sender: str, text: str, n: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_id},
            "contacts": [{"profile": {"name": f"Customer {sender}"}, "wa_id": sender}],
            "messages": [{"from": sender, "id": f"wamid.BOTS{n:08d}", "type": "text",
                          "timestamp": str(int(time.time())), "text": {"body": text}}],
        }}]}],
    }).encode()  # fmt: skip
    return body, {"content-type": "application/json", "x-hub-signature-256": sign(body, APP_SECRET)}


async def phase(
    fake: FakeGraph, path: str, phone_id: str, text: str,
    reply: str | None, senders: list[str], first: int,
) -> tuple[list[float], list[float]]:  # fmt: skip
    """Every sender writes at once, each on a connection of its own (fresh for the phase:
    the server closes idle keep-alive connections); (webhook, reply latencies) in ms."""
    webhook: list[float] = []
    replies: list[float] = []

    async def one(i: int, sender: str) -> None:
        body, headers = delivery(phone_id, sender, text, first + i)
        waiting = fake.wait(sender, reply) if reply else None
        started = time.perf_counter()
        response = await http.post(path, content=body, headers=headers)
        webhook.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
        if waiting is not None:
            try:
                arrived = await asyncio.wait_for(waiting, 60)
            except TimeoutError:
                replies.append(float("inf"))  # no reply within a minute: counted, never hidden
                return
            replies.append((arrived - started) * 1000)

    limits = httpx.Limits(max_connections=len(senders), max_keepalive_connections=len(senders))
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        await asyncio.gather(*(one(i, s) for i, s in enumerate(senders)))
    return webhook, replies


def line(name: str, samples: list[float]) -> str:
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    return f"  {name:<38} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms"


async def main(args: argparse.Namespace) -> None:
    fake = FakeGraph()
    fake_port = free_port()
    fake_server = await asyncio.start_server(fake.serve, "127.0.0.1", fake_port)
    os.environ["CONNECTGAIN_META_GRAPH_URL"] = f"http://127.0.0.1:{fake_port}/v21.0"
    async with bench_database(args.db_url) as db_url:
        conn = await asyncpg.connect(db_url)
        plain = await account(conn, "109000000000001", bot=False)
        botted = await account(conn, "109000000000002", bot=True)
        await conn.close()
        async with serving.server(db_url, command=serving.SERVE, pool=20) as server:
            base = f"http://127.0.0.1:{server.port}/functions/v1/whatsapp-webhook"
            senders = [f"4915100{i:05d}" for i in range(args.sessions)]
            n = args.sessions
            plain_url, bot_url = f"{base}/{plain}", f"{base}/{botted}"
            plain_id, bot_id = "109000000000001", "109000000000002"
            await phase(fake, plain_url, plain_id, "warm", None, senders[:5], 10**6)
            cpu = [server.cpu_seconds()]
            plain_hooks, _ = await phase(fake, plain_url, plain_id, "hello", None, senders, 0)
            cpu.append(server.cpu_seconds())
            start_hooks, start = await phase(fake, bot_url, bot_id, "hi", "Your name?", senders, n)
            answer_hooks, answer = await phase(
                fake, bot_url, bot_id, "Ann", "Thanks, Ann.", senders, 2 * n
            )
            cpu.append(server.cpu_seconds())
    fake_server.close()
    load = os.getloadavg()
    print(
        f"bots: {args.sessions} concurrent sessions, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print("baseline (no bot)")
    print(line("webhook POST → 200", plain_hooks))
    print("with a bot")
    print(line("webhook POST → 200 (start)", start_hooks))
    print(line("inbound → greeting+question at fake", start))
    print(line("webhook POST → 200 (answer)", answer_hooks))
    print(line("inbound answer → reply at fake", answer))
    plain_cpu = (cpu[1] - cpu[0]) / n * 1000
    bot_cpu = (cpu[2] - cpu[1]) / (2 * n) * 1000
    print(
        f"server CPU per inbound message: {plain_cpu:.1f} ms without a bot,"
        f" {bot_cpu:.1f} ms with one (its replies sent: {bot_cpu / plain_cpu:.1f}×)"
    )
    both = start + answer
    verdict = "met" if percentile(both, 99) < 1000 else "MISSED"
    missing = sum(1 for r in both if r == float("inf"))
    print(f"replies missing after a minute: {missing}")
    print(f"p99 inbound → bot reply: {percentile(both, 99):.1f} ms (target < 1000 ms: {verdict});"
          f" sends at the fake: {fake.count}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--db-url")
    asyncio.run(main(parser.parse_args()))
