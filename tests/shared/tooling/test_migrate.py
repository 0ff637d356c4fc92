from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from shared.db import Connection
from shared.tooling.migrate import MigrationError, is_hosted_supabase, migrate
from tests.conftest import SUPABASE_DIR


@pytest.fixture
def supabase_copy(tmp_path: Path) -> Path:
    target = tmp_path / "supabase"
    shutil.copytree(SUPABASE_DIR, target)
    return target


@pytest.fixture
async def empty_database(database_url: str) -> AsyncIterator[str]:
    """A database with nothing of ours yet, next to the test's own."""
    server, name = database_url.rsplit("/", 1)
    fresh = f"{name}_empty"
    admin = await asyncpg.connect(f"{server}/postgres")
    try:
        await admin.execute(f"create database {fresh} template template0")
        yield f"{server}/{fresh}"
        await admin.execute(f"drop database {fresh} with (force)")
    finally:
        await admin.close()


async def _ledger(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "select version || '_' || name as file from supabase_migrations.schema_migrations"
            " order by version"
        )
        return [row["file"] for row in rows]
    finally:
        await conn.close()


def _migration_files(supabase_dir: Path) -> list[str]:
    return sorted(p.name.removesuffix(".sql") for p in (supabase_dir / "migrations").glob("*.sql"))


async def test_migrate_applies_everything_then_is_a_no_op(empty_database: str, supabase_copy: Path):
    first = await migrate(empty_database, supabase_copy)
    assert first.local, "a plain PostgreSQL gets the Supabase stand-ins"
    assert first.applied == [f + ".sql" for f in _migration_files(supabase_copy)]
    assert await _ledger(empty_database) == _migration_files(supabase_copy)

    second = await migrate(empty_database, supabase_copy)
    assert second.applied == []
    assert await _ledger(empty_database) == _migration_files(supabase_copy)


async def test_a_broken_migration_stops_the_run_and_is_not_recorded(
    empty_database: str, supabase_copy: Path
):
    migrations = supabase_copy / "migrations"
    (migrations / "29990101000000_good.sql").write_text("create table good_one (id int);")
    (migrations / "29990101000001_broken.sql").write_text(
        "create table half_done (id int);\nselect * from no_such_table;"
    )
    (migrations / "29990101000002_after.sql").write_text("create table never_reached (id int);")

    with pytest.raises(MigrationError) as raised:
        await migrate(empty_database, supabase_copy)
    message = str(raised.value)
    assert "29990101000001_broken.sql" in message
    assert 'relation "no_such_table" does not exist' in message

    ledger = await _ledger(empty_database)
    assert "29990101000000_good" in ledger
    assert "29990101000001_broken" not in ledger
    assert "29990101000002_after" not in ledger
    conn = await asyncpg.connect(empty_database)
    try:
        tables = {
            r["relname"]
            for r in await conn.fetch("select relname from pg_class where relkind = 'r'")
        }
    finally:
        await conn.close()
    assert "good_one" in tables
    assert "half_done" not in tables, "the failing file's own changes are rolled back"
    assert "never_reached" not in tables


async def test_seed_runs_once_per_content(empty_database: str, supabase_copy: Path):
    (supabase_copy / "seed.sql").write_text(
        "create table seeded (n int); insert into seeded values (1);"
    )
    assert (await migrate(empty_database, supabase_copy, seed=True)).seeded
    assert not (await migrate(empty_database, supabase_copy, seed=True)).seeded


async def test_a_hosted_supabase_project_is_recognised(db: Connection):
    assert not await is_hosted_supabase(db)
    tx = db.transaction()
    await tx.start()
    try:
        await db.execute("create role supabase_admin")
        assert await is_hosted_supabase(db)
    finally:
        await tx.rollback()


async def test_without_local_files_nothing_of_supabase_local_is_applied(
    empty_database: str, supabase_copy: Path
):
    # A hosted project: the stand-ins are skipped; a plain database then lacks auth.
    (supabase_copy / "migrations").mkdir(exist_ok=True)
    for f in (supabase_copy / "migrations").glob("*.sql"):
        f.unlink()
    report = await migrate(empty_database, supabase_copy, include_local=False)
    assert report.local == []
    conn = await asyncpg.connect(empty_database)
    try:
        assert await conn.fetchval("select to_regnamespace('auth')") is None
    finally:
        await conn.close()


async def test_a_file_of_only_comments_is_recorded_without_error(
    empty_database: str, supabase_copy: Path
):
    (supabase_copy / "migrations" / "29990101000000_note.sql").write_text("-- nothing yet\n")
    (supabase_copy / "seed.sql").write_text("-- no demo data\n")
    report = await migrate(empty_database, supabase_copy, seed=True)
    assert "29990101000000_note.sql" in report.applied
    assert report.seeded


async def test_the_real_seed_applies_on_a_migrated_database(empty_database: str):
    report = await migrate(empty_database, SUPABASE_DIR, seed=True)
    assert report.seeded
    conn = await asyncpg.connect(empty_database)
    try:
        assert await conn.fetchval("select count(*) from public.organizations") >= 1
    finally:
        await conn.close()
