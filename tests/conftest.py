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

What is not under test is made cheap: the cluster trusts its loopback connections
(no password handshake for each of the thousands of connections a run opens), JIT
is off, and the provider client's backoff waits are recorded, not slept
(`provider_waits`). Python may cache compiled modules and pytest its assertion
rewrites in __pycache__ even where PYTHONDONTWRITEBYTECODE is set (tests/__init__.py,
imported before anything of ours): rewriting every test module again cost each
xdist worker ~5 s of CPU at collection.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import queue
import re
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from _pytest.nodeid import NodeId

from shared.channels import http as provider_http
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
# only spends CPU visiting them. JIT changes no result, and compiling a query whose
# estimate crosses jit_above_cost (policies inflate them) takes longer than running it.
SERVER_OPTIONS = ("autovacuum=off", "jit=off")
MAX_WORKERS = 8


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker per core for the whole suite; a file or folder named on
    the command line runs in this process, without a second cluster to start."""
    if explicit := os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(explicit)
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return 0
    return min(len(os.sched_getaffinity(0)), MAX_WORKERS)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups for `--dist loadgroup`: a module that builds its world once (a
    module-scoped fixture) runs on one worker (split between two, each built it), as
    does a module marked `xdist_group`.

    pytest-xdist names a test's group by appending `@group` to its node id, which
    pytest 9 no longer lets it do (the id is structured now): every group was split.
    The worker does it here, after xdist's own attempt, unless that one took."""
    if not hasattr(config, "workerinput") or not config.getvalue("loadgroup"):
        return
    for item in items:
        groups = {str(mark.args[0]) for mark in item.iter_markers("xdist_group") if mark.args}
        info = getattr(item, "_fixtureinfo", None)
        fixtures = info.name2fixturedefs if info is not None else {}
        if not groups and any(defs and defs[-1].scope == "module" for defs in fixtures.values()):
            groups = {item.nodeid.split("::")[0]}
        if groups and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(sorted(groups))}")


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
    cluster.init()
    _trust_loopback(cluster)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()
        root.rmdir()


def _trust_loopback(cluster: Cluster) -> None:
    """The session's own cluster (a private folder, a free port, gone at the end) lets
    its loopback connections in without SCRAM's handshake, ~5 ms of CPU each."""
    hba = cluster.data_dir / "pg_hba.conf"
    hba.write_text(re.sub(r"(?m)^(host\s.*\s)scram-sha-256$", r"\1trust", hba.read_text()))


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
    a test rarely waits for CREATE DATABASE; used databases are dropped there too.

    Closing does not wait for PostgreSQL: what is left (the databases made ahead, the
    last ones used) goes with the cluster. It used to drop them first, and DROP
    DATABASE waits, without a timeout, until every backend of the cluster has closed
    its files (a checkpoint and a ProcSignalBarrier, PostgreSQL 15), which a backend
    blocked writing to a client that stopped reading (a connection leaked from a
    closed event loop) does not do while blocked: the likely way a teardown sat out
    the join's 30 s. Any such wait now ends with the cluster."""

    def __init__(self, cluster: Cluster, template: str, ahead: int = 2) -> None:
        self.cluster, self.template = cluster, template
        self.ready: queue.Queue[str] = queue.Queue(maxsize=ahead)
        self.used: queue.Queue[str] = queue.Queue()
        self.closing = threading.Event()
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
            while not self.closing.is_set():
                name = f"test_{os.getpid()}_{next(_database_numbers)}"
                await self._drop_used(conn)
                # FILE_COPY clones in a few ms; its checkpoint is cheap because the
                # dropped databases' buffers are discarded, not written.
                await conn.execute(
                    f"create database {name} template {self.template} strategy file_copy"
                )
                while not self.closing.is_set():
                    await self._drop_used(conn)
                    try:
                        self.ready.put(name, timeout=0.05)
                        break
                    except queue.Full:
                        continue
        finally:
            await conn.close()

    async def _drop_used(self, conn: asyncpg.Connection) -> None:
        """Drop what tests have finished with."""
        while not self.closing.is_set():
            try:
                name = self.used.get_nowait()
            except queue.Empty:
                return
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
        self.closing.set()
        # The thread ends after the statement it is in; one that takes longer than
        # this is stuck on the server, where stopping the cluster ends it.
        self.thread.join(timeout=5)


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


@pytest.fixture(autouse=True)
def provider_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The provider client's backoff and Retry-After waits, recorded instead of slept:
    every attempt, answer and recorded wait is as deployed, only sooner (a retried
    send used to sleep 0.5 + 1 s). The event loop still turns at each wait."""
    recorded: list[float] = []

    async def no_sleep(seconds: float) -> None:
        recorded.append(seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr(provider_http, "sleep", no_sleep)
    return recorded


@pytest.fixture(autouse=True)
def heap_as_found() -> Iterator[None]:
    """A test that serves leaves the garbage collector as it found it: a gateway's
    lifespan freezes the startup heap, as deployed, and the tests after it on the same
    worker (in whatever order xdist hands them out) expect a process that is not."""
    thresholds = gc.get_threshold()
    yield
    if gc.get_freeze_count():
        gc.unfreeze()
    gc.set_threshold(*thresholds)
