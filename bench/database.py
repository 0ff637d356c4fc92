"""A database for a benchmark: a throwaway durable cluster with everything migrated,
or an existing database given by URL."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from shared.settings import PROJECT_DIR
from shared.tooling.cluster import Cluster, free_port
from shared.tooling.migrate import migrate


@asynccontextmanager
async def bench_database(db_url: str | None = None) -> AsyncIterator[str]:
    if db_url:
        yield db_url
        return
    root = Path(tempfile.mkdtemp(prefix="connectgain-bench-"))
    os.chmod(root, 0o755)  # noqa: S103  (the server may run as an unprivileged user)
    cluster = Cluster(data_dir=root / "db", port=free_port(), durable=True)
    cluster.start()
    try:
        conn = await asyncpg.connect(cluster.url("postgres"))
        await conn.execute("create database bench")
        await conn.close()
        await migrate(cluster.url("bench"), PROJECT_DIR / "supabase", include_local=True)
        yield cluster.url("bench")
    finally:
        cluster.destroy()
        root.rmdir()  # noqa: ASYNC240


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
