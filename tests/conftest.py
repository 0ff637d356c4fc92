"""The test harness: one throwaway PostgreSQL per session, a fresh database per test.

The cluster is started by the same code as `connectgain db start`, in a
temporary folder on a free port, so a developer's .connectgain/db is never
touched. Everything in supabase/ is applied once to a template database; each
test gets its own database cloned from it (CREATE DATABASE … TEMPLATE).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared.db import Connection
from shared.gateway import Gateway
from shared.settings import PROJECT_DIR, Settings
from shared.tooling.cluster import Cluster, free_port
from shared.tooling.migrate import migrate
from shared.web import Runtime

SUPABASE_DIR = PROJECT_DIR / "supabase"
TEMPLATE = "cg_template"
_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="connectgain-test-"))
    os.chmod(root, 0o755)  # the server may run as an unprivileged user
    cluster = Cluster(data_dir=root / "db", port=free_port(), durable=False)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()
        root.rmdir()


async def _admin(cluster: Cluster, *statements: str) -> None:
    conn = await asyncpg.connect(cluster.url("postgres"))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_database(pg_cluster: Cluster) -> str:
    asyncio.run(_admin(pg_cluster, f"create database {TEMPLATE}"))
    asyncio.run(migrate(pg_cluster.url(TEMPLATE), SUPABASE_DIR, include_local=True))
    return TEMPLATE


@pytest.fixture
async def database_url(pg_cluster: Cluster, template_database: str) -> AsyncIterator[str]:
    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    await _admin(pg_cluster, f"create database {name} template {template_database}")
    yield pg_cluster.url(name)
    await _admin(pg_cluster, f"drop database {name} with (force)")


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        mode="local",
        database_url=database_url,
        db_pool_min=1,
        db_pool_max=5,
        public_base_url="https://connectgain.example",
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await Runtime.open(settings)
    try:
        yield runtime
    finally:
        await runtime.close()


@pytest.fixture
async def db(runtime: Runtime) -> AsyncIterator[Connection]:
    """A connection as the owner (RLS bypassed), for arranging and inspecting data."""
    async with runtime.db.pool.acquire() as conn:
        yield conn


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway, as `connectgain serve` exposes it, over an in-process transport."""
    gateway = Gateway(runtime.settings, runtime=runtime)
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:54321") as c:
        yield c
