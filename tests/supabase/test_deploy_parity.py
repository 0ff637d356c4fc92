"""The schema is the same, RLS included, whether the stock Supabase CLI or
`connectgain db migrate` deploys it; and no migration leaves a table open."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from shared.tooling.cluster import Cluster
from shared.tooling.migrate import migrate
from tests.conftest import SUPABASE_DIR, run_admin
from tests.security.catalog import exposed_schemas, exposed_tables, exposure_problems
from tests.supabase.parity import (
    Snapshot,
    apply_local,
    differences,
    migrate_file_by_file,
    snapshot,
    supabase_db_push,
)

CLI_NAME, RUNNER_NAME = "supabase db push", "connectgain db migrate"
MIGRATIONS = sorted(p.name for p in (SUPABASE_DIR / "migrations").glob("*.sql"))


@dataclass
class Deployed:
    cli_url: str
    runner_url: str
    cli_output: str
    cli_ledger: list[str]
    cli: Snapshot
    runner: Snapshot
    steps: dict[str, list[str]]


async def _snapshot_of(url: str) -> tuple[Snapshot, list[str]]:
    conn = await asyncpg.connect(url)
    try:
        ledger = await conn.fetch(
            "select version || '_' || name || '.sql' as file"
            " from supabase_migrations.schema_migrations order by version"
        )
        return await snapshot(conn), [r["file"] for r in ledger]
    finally:
        await conn.close()


async def _deploy(*, cli_url: str, runner_url: str, stepwise_url: str, scratch: Path) -> Deployed:
    # What a hosted project has already; first and alone, as it creates the cluster's roles.
    await apply_local(cli_url, supabase_dir=SUPABASE_DIR)
    # The CLI is a subprocess: the runner builds its databases meanwhile.
    output, _, steps = await asyncio.gather(
        supabase_db_push(cli_url, supabase_dir=SUPABASE_DIR, scratch=scratch),
        migrate(runner_url, SUPABASE_DIR, include_local=True),  # `connectgain db migrate`
        migrate_file_by_file(stepwise_url, supabase_dir=SUPABASE_DIR, scratch=scratch / "stepwise"),
    )
    (cli, ledger), (runner, _) = await asyncio.gather(
        _snapshot_of(cli_url), _snapshot_of(runner_url)
    )
    return Deployed(cli_url, runner_url, output, ledger, cli, runner, steps)


@pytest.fixture(scope="module")
def deployed(pg_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    names = [f"parity_{kind}_{os.getpid()}" for kind in ("cli", "runner", "stepwise")]
    asyncio.run(run_admin(pg_cluster, *(f"create database {n} template template0" for n in names)))
    try:
        cli, runner, stepwise = (pg_cluster.url(n) for n in names)
        scratch = tmp_path_factory.mktemp("parity")
        yield asyncio.run(
            _deploy(cli_url=cli, runner_url=runner, stepwise_url=stepwise, scratch=scratch)
        )
    finally:
        asyncio.run(run_admin(pg_cluster, *(f"drop database {n} with (force)" for n in names)))


def test_supabase_db_push_and_connectgain_migrate_build_the_same_database(deployed: Deployed):
    assert "Finished supabase db push" in deployed.cli_output
    assert deployed.cli_ledger == MIGRATIONS, "the CLI applied every migration"
    public_tables = {r[1] for r in deployed.cli["relation"] if r[0] == "public" and r[2] == "r"}
    assert len(public_tables) >= 23 and "organizations" in public_tables
    assert differences(deployed.cli, deployed.runner, a_name=CLI_NAME, b_name=RUNNER_NAME) == []


async def test_rls_is_on_for_every_exposed_table_either_way(deployed: Deployed):
    schemas = exposed_schemas()
    for url in (deployed.cli_url, deployed.runner_url):
        conn = await asyncpg.connect(url)
        try:
            assert len(await exposed_tables(conn, schemas)) >= 23
            assert await exposure_problems(conn, schemas) == []
        finally:
            await conn.close()
    open_tables = [
        r[:2]
        for r in deployed.cli["relation"]
        if r[0] in schemas and r[2] in ("r", "p") and not r[3]
    ]
    assert open_tables == []


def test_no_migration_leaves_an_exposed_table_open(deployed: Deployed):
    assert deployed.steps == {name: [] for name in MIGRATIONS}


async def test_the_comparison_names_every_kind_of_difference(deployed: Deployed):
    changes = {
        ("relation", "'organizations'"): "alter table organizations disable row level security",
        ("relation", "'contacts'"): "alter table contacts force row level security",
        ("relation", "'api_keys'"): "revoke delete on api_keys from anon",
        ("policy", "'deals_delete'"): "drop policy deals_delete on deals",
        ("policy", "'tags_select'"): "alter policy tags_select on tags to authenticated, anon",
        ("column", "'name'"): "grant select (name) on organizations to authenticated",
        ("function", "'create_organization'"): (
            "revoke execute on function create_organization(text) from authenticated"
        ),
        ("function", "'org_ids'"): "alter function app.org_ids() security invoker",
        ("function", "'slugify'"): "alter function app.slugify(text) reset search_path",
    }
    conn = await asyncpg.connect(deployed.runner_url)
    try:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute("set local search_path = public; " + "; ".join(changes.values()))
            changed = await snapshot(conn)
        finally:
            await tx.rollback()
    finally:
        await conn.close()

    lines = differences(deployed.cli, changed, a_name=CLI_NAME, b_name=RUNNER_NAME)
    for kind, name in changes:
        assert any(line.startswith(f"{kind}:") and name in line for line in lines), (kind, name)
    for line in lines:
        assert any(line.startswith(f"{kind}:") and name in line for kind, name in changes), line
    assert any(f"only in {CLI_NAME}: ('public', 'deals', 'deals_delete'" in x for x in lines)


def test_differences_lists_each_side_by_kind():
    a = {"policy": {("public", "t", "p", "SELECT")}, "relation": {("public", "t", True)}}
    b = {"policy": set(), "relation": {("public", "t", False)}}
    assert differences(a, b, a_name="cli", b_name="runner") == [
        "policy: only in cli: ('public', 't', 'p', 'SELECT')",
        "relation: only in cli: ('public', 't', True)",
        "relation: only in runner: ('public', 't', False)",
    ]
    assert differences(a, a, a_name="cli", b_name="runner") == []


async def test_a_table_closed_only_by_a_later_migration_is_caught(
    pg_cluster: Cluster, tmp_path: Path
):
    source = tmp_path / "source"
    (source / "migrations").mkdir(parents=True)
    (source / "local").symlink_to(SUPABASE_DIR / "local")
    (source / "migrations" / "29990101000000_open.sql").write_text(
        "create table public.throwaway (id int primary key);"
    )
    (source / "migrations" / "29990101000001_close.sql").write_text(
        "alter table public.throwaway enable row level security;"
        " create policy p on public.throwaway for select to authenticated using (true);"
    )
    name = f"parity_late_{os.getpid()}"
    await run_admin(pg_cluster, f"create database {name} template template0")
    try:
        steps = await migrate_file_by_file(
            pg_cluster.url(name), supabase_dir=source, scratch=tmp_path / "scratch"
        )
    finally:
        await run_admin(pg_cluster, f"drop database {name} with (force)")
    assert steps == {
        "29990101000000_open.sql": ["public.throwaway: row level security is not enabled"],
        "29990101000001_close.sql": [],
    }
