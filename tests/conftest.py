"""The test harness: one throwaway PostgreSQL per session, a fresh database per test.

The cluster is started by the same code as `connectgain db start`, in a
temporary folder on a free port, so a developer's .connectgain/db is never
touched. Everything in supabase/ is applied once to a template database; each
test gets its own database cloned from it (CREATE DATABASE … TEMPLATE).

Most of a test's setup is PostgreSQL warming up new connections (catalog caches,
plans of the policies and functions), not the clone. A module whose tests only
add rows they check by key can share one database and one warm pool instead
(`module_database_url`; tests/security/test_isolation.py shows how).

The whole suite runs on pytest-xdist workers, one per core (`-n auto` in
pyproject; see pytest_xdist_auto_num_workers below); each worker is a session of
its own, with its own cluster, template and databases. The cluster lives on tmpfs
(/dev/shm) when there is room, so cloning and checkpoints never wait on a disk.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared.db import Connection
from shared.runtime import Runtime
from shared.settings import PROJECT_DIR, Settings
from shared.tooling.cluster import Cluster, free_port
from shared.tooling.gateway import Gateway
from shared.tooling.migrate import migrate
from tests.support import LocalAuthNetwork, settings_for

SUPABASE_DIR = PROJECT_DIR / "supabase"
TEMPLATE = "cg_template"
_database_numbers = itertools.count(1)
TMPFS = Path("/dev/shm")  # noqa: S108 (only as mkdtemp's parent: a fresh private folder)
TMPFS_NEEDED = 1 << 30  # a template, a few clones and the WAL, with room to spare
# Nothing in a test waits for autovacuum; in a cluster of short-lived databases it
# only spends CPU visiting them.
SERVER_OPTIONS = ("autovacuum=off",)
MAX_WORKERS = 8


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker per core for the whole suite; a file or folder named on
    the command line runs in this process, without a second cluster to start."""
    if explicit := os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(explicit)
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return 0
    return min(len(os.sched_getaffinity(0)), MAX_WORKERS)


def _cluster_root() -> Path:
    """A fresh folder for the cluster: on tmpfs when the machine has enough of it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    on_tmpfs = (
        TMPFS.is_dir()
        and os.access(TMPFS, os.W_OK)
        and shutil.disk_usage(TMPFS).free > TMPFS_NEEDED
    )
    return Path(
        tempfile.mkdtemp(prefix=f"connectgain-test-{worker}-", dir=TMPFS if on_tmpfs else None)
    )


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    root = _cluster_root()
    os.chmod(root, 0o755)  # the server may run as an unprivileged user
    cluster = Cluster(data_dir=root / "db", port=free_port(), durable=False, options=SERVER_OPTIONS)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()
        root.rmdir()


async def run_admin(cluster: Cluster, *statements: str, database: str = "postgres") -> None:
    """Runs `statements` on the cluster's maintenance database (create/drop database),
    or on `database`."""
    conn = await asyncpg.connect(cluster.url(database))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


UNLIMITED_FOR_NEW_ORGANIZATIONS = (
    "update public.plans set for_new_organizations = false;"
    " update public.plans set for_new_organizations = true where code = 'enterprise'"
)


@pytest.fixture(scope="session")
def template_database(pg_cluster: Cluster) -> str:
    asyncio.run(run_admin(pg_cluster, f"create database {TEMPLATE}"))
    asyncio.run(migrate(pg_cluster.url(TEMPLATE), SUPABASE_DIR, include_local=True))
    # Test organizations start unlimited, so suites that make many rows never meet a
    # plan limit; the billing tests put their organizations on the plans they test.
    asyncio.run(run_admin(pg_cluster, UNLIMITED_FOR_NEW_ORGANIZATIONS, database=TEMPLATE))
    return TEMPLATE


class DatabaseFactory:
    """Clones the template a couple of databases ahead, on a thread of its own, so
    a test rarely waits for CREATE DATABASE; used databases are dropped there too."""

    def __init__(self, cluster: Cluster, template: str, ahead: int = 2) -> None:
        self.cluster, self.template = cluster, template
        self.ready: queue.Queue[str] = queue.Queue(maxsize=ahead)
        self.used: queue.Queue[str | None] = queue.Queue()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name="db-factory", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        try:
            asyncio.run(self._loop())
        except BaseException as exc:  # surfaced to the next test that asks
            self.failure = exc

    async def _loop(self) -> None:
        conn = await asyncpg.connect(self.cluster.url("postgres"))
        try:
            while True:
                name = f"test_{os.getpid()}_{next(_database_numbers)}"
                await self._drop_used(conn)
                # FILE_COPY clones in a few ms; its checkpoint is cheap because the
                # dropped databases' buffers are discarded, not written.
                await conn.execute(
                    f"create database {name} template {self.template} strategy file_copy"
                )
                while True:
                    if await self._drop_used(conn):
                        return
                    try:
                        self.ready.put(name, timeout=0.05)
                        break
                    except queue.Full:
                        continue
        finally:
            await conn.close()

    async def _drop_used(self, conn: asyncpg.Connection) -> bool:
        """Drop what tests have finished with; True once the session is over."""
        while True:
            try:
                name = self.used.get_nowait()
            except queue.Empty:
                return False
            if name is None:
                return True
            await conn.execute(f"drop database {name} with (force)")

    def take(self) -> str:
        while True:
            if self.failure is not None:
                raise RuntimeError("could not create a test database") from self.failure
            try:
                return self.ready.get(timeout=1)
            except queue.Empty:
                continue

    def close(self) -> None:
        self.used.put(None)
        self.thread.join(timeout=30)


@pytest.fixture(scope="session")
def database_factory(pg_cluster: Cluster, template_database: str) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(pg_cluster, template_database)
    yield factory
    factory.close()


@pytest.fixture
def database_url(pg_cluster: Cluster, database_factory: DatabaseFactory) -> Iterator[str]:
    name = database_factory.take()
    yield pg_cluster.url(name)
    database_factory.used.put(name)


@pytest.fixture(scope="module")
def module_database_url(pg_cluster: Cluster, database_factory: DatabaseFactory) -> Iterator[str]:
    """Opt-in, for a module whose tests only add rows they check by key: one fresh
    database for all of the module's tests, each seeing what earlier ones committed.
    With module-scoped runtime and db (loop_scope="module"), its connections stay warm."""
    name = database_factory.take()
    yield pg_cluster.url(name)
    database_factory.used.put(name)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(database_url)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await Runtime.open(settings, transport=LocalAuthNetwork(settings))
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
