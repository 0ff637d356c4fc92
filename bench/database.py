"""A database for a benchmark: a throwaway durable cluster with everything migrated,
or an existing database given by URL."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
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
        await unlimited_plans(cluster.url("bench"))
        yield cluster.url("bench")
    finally:
        cluster.destroy()
        root.rmdir()  # noqa: ASYNC240


async def unlimited_plans(db_url: str) -> None:
    """New organizations start on the unlimited plan: a benchmark measures the work,
    not the free plan's limits (whose triggers still run, as in production)."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "update public.plans set for_new_organizations = false;"
            " update public.plans set for_new_organizations = true where code = 'enterprise'"
        )
    finally:
        await conn.close()


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# ---- loading helpers shared by the benchmarks ----------------------------------------------------


async def new_user(conn: asyncpg.Connection, email: str) -> uuid.UUID:
    user: uuid.UUID = await conn.fetchval(
        "insert into auth.users (email) values ($1) returning id", email
    )
    return user


async def new_org(conn: asyncpg.Connection, owner: uuid.UUID, name: str) -> uuid.UUID:
    """As the SPA does it: create_organization() as the signed-in owner."""
    async with conn.transaction():
        await conn.execute(
            "select set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', $1, true)",
            json.dumps({"sub": str(owner), "role": "authenticated"}),
        )
        org: uuid.UUID = await conn.fetchval("select public.create_organization($1)", name)
    return org


async def new_team(conn: asyncpg.Connection, name: str) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """An organization `name` founded by its owner, with an agent: (org, owner, agent)."""
    owner = await new_user(conn, f"owner@{name}.example")
    agent = await new_user(conn, f"agent@{name}.example")
    org = await new_org(conn, owner, name)
    await conn.execute(
        "insert into organization_members (organization_id, user_id, role)"
        " values ($1, $2, 'agent')",
        org,
        agent,
    )
    return org, owner, agent
