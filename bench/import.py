"""A CSV import of contacts against a raw COPY of the same file.

    .venv/bin/python bench/import.py [--rows 1000000] [--small 100000] [--db-url URL]

Writes a CSV file of `--rows` contacts (name, e-mail, phone in E.164, city as a
custom text field) and, in the same run:

- COPYs it raw into a bare table (`copy … from stdin with csv header`): the floor;
- imports it as an admin would: the upload (read, map, normalize, COPY into
  staging: shared/imports/upload.py) and the job (the file planned once, then its
  batches written into contacts on WORKERS connections: shared/imports/runner.py),
  each timed, the plan's part of the merge too.

Printed: rows/s of each, the import's ratio to the raw COPY, and the process's
peak RSS after an import of `--small` rows and after the full one (flat in the
file's size when the two are close). Run on a quiet machine; `uptime` is printed
beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from bench.database import bench_database, new_org, new_user
from shared.imports import plan, runner, upload
from shared.imports.upload import CsvImportOptions
from shared.runtime import Runtime
from shared.settings import Settings

PLAN_SECONDS: list[float] = []  # the plan's part of each merge


def write_csv(path: Path, rows: int, salt: str) -> int:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("Name,E-mail,Phone number,City\n")
        for i in range(rows):
            out.write(f'"Person {i}, {salt}",p{i}.{salt}@example.com,+4915{i:09d},Berlin\n')
    return path.stat().st_size


def cpu_of(pid: int) -> float:
    """CPU seconds process `pid` has used (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def backends(conn: asyncpg.Connection) -> list[int]:
    rows = await conn.fetch(
        "select pid from pg_stat_activity where datname = current_database()"
        " and backend_type = 'client backend' and pid <> pg_backend_pid()"
    )
    return [r["pid"] for r in rows]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def raw_copy(conn: asyncpg.Connection, path: Path) -> tuple[float, float]:
    """(seconds, the backend's CPU seconds) of a raw COPY into a bare table."""
    await conn.execute(
        "drop table if exists bench_raw; create table bench_raw (name text, email text,"
        " phone text, city text)"
    )
    pid = await conn.fetchval("select pg_backend_pid()")
    cpu = cpu_of(pid)
    began = time.perf_counter()
    with path.open("rb") as source:
        await conn.copy_to_table("bench_raw", source=source, format="csv", header=True)
    return time.perf_counter() - began, cpu_of(pid) - cpu


async def import_file(
    runtime: Runtime, conn: asyncpg.Connection, path: Path
) -> tuple[float, float, float, float]:
    """(upload s, merge s, this process's CPU s, PostgreSQL backends' CPU s)."""
    owner = await new_user(conn, f"{uuid.uuid4().hex}@bench.example")
    org = await new_org(conn, owner, "Bench")
    await conn.execute(
        "insert into custom_field_definitions (organization_id, entity, key, label, type)"
        " values ($1, 'contact', 'city', 'City', 'text')",
        org,
    )
    before = {pid: cpu_of(pid) for pid in await backends(conn)}
    own_cpu = time.process_time()
    began = time.perf_counter()
    with path.open("rb") as file:
        job = await upload.start_import(
            db=runtime.db,
            user_id=owner,
            organization_id=org,
            file=file,
            options=CsvImportOptions(default_region="DE"),
        )
    staged = time.perf_counter()
    planned = plan.plan

    async def timed_plan(**kwargs: Any) -> tuple[int, int]:
        began = time.perf_counter()
        try:
            return await planned(**kwargs)
        finally:
            PLAN_SECONDS.append(time.perf_counter() - began)

    plan.plan = timed_plan  # type: ignore[assignment]
    try:
        assert await runner.run_job(runtime, job["id"])
    finally:
        plan.plan = planned
    done = time.perf_counter()
    report = json.loads(
        await conn.fetchval("select report from import_jobs where id = $1", job["id"])
    )
    assert report and report["created"] == job["options"]["rows"], report
    own_cpu = time.process_time() - own_cpu
    # the pool's backends (kept open by the runtime): their CPU since before
    db_cpu = sum(cpu_of(pid) - before.get(pid, 0.0) for pid in await backends(conn))
    return staged - began, done - staged, own_cpu, db_cpu


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--db-url")
    args = parser.parse_args()
    print("load:", os.getloadavg())
    async with bench_database(args.db_url) as db_url:
        runtime = await Runtime.open(Settings(database_url=db_url, _env_file=None))  # type: ignore[call-arg]
        conn = await asyncpg.connect(db_url)
        try:
            with tempfile.TemporaryDirectory() as folder:
                for rows in (args.small, args.rows):
                    path = Path(folder) / f"contacts-{rows}.csv"
                    size = write_csv(path, rows, uuid.uuid4().hex[:8])
                    copy_s, copy_cpu = await raw_copy(conn, path)
                    upload_s, merge_s, own_cpu, db_cpu = await import_file(runtime, conn, path)
                    total = upload_s + merge_s
                    us = 1e6 / rows
                    print(
                        f"{rows:,} rows ({size / 2**20:.0f} MB): raw COPY {copy_s:.2f} s"
                        f" = {rows / copy_s:,.0f} rows/s ({copy_cpu * us:.1f} µs CPU/row);"
                        f" import {total:.2f} s (upload {upload_s:.2f} + merge {merge_s:.2f},"
                        f" of which plan {PLAN_SECONDS[-1]:.2f}, {runner.WORKERS} writers)"
                        f" = {rows / total:,.0f} rows/s, {copy_s / total:.3f} of COPY"
                        f" (CPU/row: PostgreSQL {db_cpu * us:.1f} µs, Python {own_cpu * us:.1f}"
                        f" µs; CPU ratio {copy_cpu / (db_cpu + own_cpu):.3f});"
                        f" peak RSS {peak_rss_mb():.0f} MB"
                    )
                    path.unlink()
        finally:
            await conn.close()
            await runtime.close()
    print("load:", os.getloadavg())


if __name__ == "__main__":
    asyncio.run(main())
