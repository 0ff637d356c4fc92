"""The HTTP load generator: its own process, keep-alive connections, prepared requests.

    python bench/loadgen.py PORT REQUESTS_FILE --concurrency C

REQUESTS_FILE holds whole HTTP/1.1 requests, each behind a 4-byte big-endian length
(bench/ingest.py writes it). Each of C connections sends one request, reads the whole
answer, then sends the next: a provider's delivery workers, over real HTTP. Requests
are built before the clock starts and answers are parsed no further than the status
line and Content-Length, so the generator spends as little of the shared cores as an
HTTP client can. Prints one JSON line: seconds, per-request latencies (ms), the
answers that were not 200 with no failed event, and its own CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import struct
import sys
import time
from pathlib import Path

OK_BODY = b'"failed":0'  # the webhook's answer when every event of the delivery was kept


def read_requests(path: Path) -> list[bytes]:
    data, requests, at = path.read_bytes(), [], 0
    while at < len(data):
        (size,) = struct.unpack_from(">I", data, at)
        requests.append(data[at + 4 : at + 4 + size])
        at += 4 + size
    return requests


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


async def run(
    port: int, requests: list[bytes], concurrency: int, deadline: float
) -> dict[str, object]:
    pending = iter(requests)
    latencies: list[float] = []
    errors: list[str] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in pending:
                started = time.perf_counter()
                status, body = await asyncio.wait_for(exchange(reader, writer, request), deadline)
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 200 or OK_BODY not in body:
                    errors.append(f"{status} {body[:200]!r}")
        finally:
            writer.close()

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {"seconds": seconds, "latencies": latencies, "errors": errors[:5],
            "error_count": len(errors), "cpu_seconds": cpu}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("requests", type=Path)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    args = parser.parse_args()
    requests = read_requests(args.requests)
    try:
        import uvloop  # the cheaper event loop, when installed: less CPU taken from the server

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args.port, requests, args.concurrency, args.timeout))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
