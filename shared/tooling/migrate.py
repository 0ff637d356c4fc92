"""The migration runner: supabase/local, then pending migrations, as `supabase db push` does.

Migrations are the whole schema: each creates its tables with row level
security on and their policies beside them, so this runner and the stock
Supabase CLI build the same database (tests/supabase/test_deploy_parity.py).
Applied migrations are recorded in `supabase_migrations.schema_migrations`, the
Supabase CLI's own ledger, so `supabase migration list` agrees with us. Each
migration runs in its own transaction together with its ledger row: a failing
file leaves neither. `supabase/local` (what a hosted project already has) is
applied only to a database that is not a Supabase project.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:  # the CLI imports this module for every command; shared.db pulls in auth
    from shared.db import Connection

_MIGRATION_NAME = re.compile(r"^(?P<version>\d+)_(?P<name>.+)\.sql$")

# The Supabase CLI's own DDL for its ledger, so either tool can create it.
LEDGER_DDL = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations
  (version text not null primary key);
alter table supabase_migrations.schema_migrations add column if not exists statements text[];
alter table supabase_migrations.schema_migrations add column if not exists name text;
create table if not exists supabase_migrations.seed_files
  (path text not null primary key, hash text not null);
"""


class MigrationError(Exception):
    def __init__(self, path: Path, error: asyncpg.PostgresError) -> None:
        position = getattr(error, "position", None)
        where = f" (at character {position})" if position else ""
        super().__init__(f"{path.name}: {type(error).__name__}: {error}{where}")
        self.path = path
        self.error = error


@dataclass
class MigrationReport:
    local: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    seeded: bool = False


def _execute_script(sql: str) -> bool:
    """False for a file of only comments, which asyncpg cannot send."""
    return any(line.strip() and not line.lstrip().startswith("--") for line in sql.splitlines())


def _sql_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.sql")) if folder.is_dir() else []


async def is_hosted_supabase(conn: Connection) -> bool:
    """A Supabase project has its own admin role; our stand-ins must never go there."""
    return bool(
        await conn.fetchval(
            "select exists(select 1 from pg_roles where rolname = 'supabase_admin')"
        )
    )


async def _apply_file(conn: asyncpg.Connection, path: Path) -> None:
    try:
        sql = path.read_text()
        if _execute_script(sql):
            async with conn.transaction():
                await conn.execute(sql)
    except asyncpg.PostgresError as exc:
        raise MigrationError(path, exc) from exc


async def migrate(
    db_url: str,
    supabase_dir: Path,
    *,
    include_local: bool | None = None,
    seed: bool = False,
) -> MigrationReport:
    """Bring the database at `db_url` up to date; `include_local=None` decides by itself."""
    report = MigrationReport()
    conn = await asyncpg.connect(db_url)
    try:
        # One runner at a time per database; released when the connection closes.
        await conn.execute("select pg_advisory_lock(hashtext('connectgain.migrate'))")
        if include_local is None:
            include_local = not await is_hosted_supabase(conn)
        if include_local:
            for path in _sql_files(supabase_dir / "local"):
                await _apply_file(conn, path)
                report.local.append(path.name)

        await conn.execute(LEDGER_DDL)
        applied = {
            row["version"]
            for row in await conn.fetch("select version from supabase_migrations.schema_migrations")
        }
        for path in _sql_files(supabase_dir / "migrations"):
            match = _MIGRATION_NAME.match(path.name)
            if match is None or match["version"] in applied:
                continue
            sql = path.read_text()
            try:
                async with conn.transaction():
                    if _execute_script(sql):
                        await conn.execute(sql)
                    await conn.execute(
                        "insert into supabase_migrations.schema_migrations"
                        " (version, name, statements) values ($1, $2, $3)",
                        match["version"],
                        match["name"],
                        [sql],
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(path, exc) from exc
            report.applied.append(path.name)

        if seed:
            report.seeded = await apply_seed(conn, supabase_dir / "seed.sql")
    finally:
        await conn.close()
    return report


async def apply_seed(conn: asyncpg.Connection, seed_file: Path) -> bool:
    """Run seed.sql once per content (recorded like the CLI does); True when it ran."""
    if not seed_file.exists():
        return False
    sql = seed_file.read_text()
    digest = hashlib.sha256(sql.encode()).hexdigest()
    recorded = await conn.fetchval(
        "select hash from supabase_migrations.seed_files where path = $1", seed_file.name
    )
    if recorded == digest:
        return False
    try:
        async with conn.transaction():
            if _execute_script(sql):
                await conn.execute(sql)
            await conn.execute(
                "insert into supabase_migrations.seed_files (path, hash) values ($1, $2)"
                " on conflict (path) do update set hash = excluded.hash",
                seed_file.name,
                digest,
            )
    except asyncpg.PostgresError as exc:
        raise MigrationError(seed_file, exc) from exc
    return True
