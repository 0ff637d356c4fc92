"""The server under test as its own process, as deployed, and the load generator as another.

The server is `connectgain serve` on a free loopback port against the bench database
(or any command given with {port} in it, to compare serving stacks). The load
generator is bench/loadgen.py in a process of its own, over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import struct
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.dbcost import tree_cpu_seconds
from shared.settings import PROJECT_DIR
from shared.tooling.cluster import free_port

SERVE = f"{shlex.quote(sys.executable)} -m shared.tooling.cli serve --port {{port}}"
LOADGEN = Path(__file__).with_name("loadgen.py")


def http_request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass
class Server:
    pid: int
    port: int
    process: asyncio.subprocess.Process

    def cpu_seconds(self) -> float:
        """The server's CPU, its workers' included."""
        return tree_cpu_seconds(self.pid)


async def _answers(port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.write(b"GET /functions/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    try:
        line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    return line.startswith(b"HTTP/1.1")


@asynccontextmanager
async def server(db_url: str, *, command: str, pool: int) -> AsyncIterator[Server]:
    port = free_port()
    env = {**os.environ, "CONNECTGAIN_DB_URL": db_url, "CONNECTGAIN_DB_POOL_MIN": str(pool),
           "CONNECTGAIN_DB_POOL_MAX": str(pool), "CONNECTGAIN_API_PORT": str(port)}  # fmt: skip
    log = tempfile.TemporaryFile()  # noqa: SIM115  (read back only when it fails)
    process = await asyncio.create_subprocess_exec(
        *shlex.split(command.format(port=port)),
        cwd=PROJECT_DIR, env=env, stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not await _answers(port):
            if process.returncode is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"the server did not start:\n{log.read().decode()[-3000:]}")
            await asyncio.sleep(0.2)
        yield Server(process.pid, port, process)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGTERM)  # its own session: the workers too
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        log.close()


async def load(port: int, requests: list[bytes], concurrency: int) -> dict[str, object]:
    """Runs the load generator in its own process; returns what it measured."""
    with tempfile.NamedTemporaryFile(suffix=".requests") as file:
        file.write(b"".join(struct.pack(">I", len(r)) + r for r in requests))
        file.flush()
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(LOADGEN), str(port), file.name, "--concurrency", str(concurrency),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(process.communicate(), 600)
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed ({process.returncode})")
    result: dict[str, object] = json.loads(out)
    return result
