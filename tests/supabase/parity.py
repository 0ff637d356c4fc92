"""Deploying the schema two ways and comparing what each left in the catalog.

`supabase db push` (the stock CLI, pinned; `make supabase-cli` installs it) and
`connectgain db migrate` must build the same database: the same RLS flags,
policies, grants and function privileges. A snapshot is a set of rows per kind
of object, so two snapshots compare as sets and a difference names its object.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import asyncpg
import pytest

from shared.db import Connection
from shared.settings import PROJECT_DIR
from shared.tooling.migrate import migrate
from tests.security.catalog import exposed_schemas, exposure_problems

CLI_VERSION = "2.117.0"  # the Makefile's SUPABASE_CLI_VERSION
CLI_DIR = PROJECT_DIR / ".connectgain" / "supabase-cli"
CLI = CLI_DIR / "node_modules" / ".bin" / "supabase"

# The tools' own ledger differs by design (the runner also records seed.sql).
_NOT_SCHEMA = ["pg_catalog", "information_schema", "pg_toast", "supabase_migrations"]
_SCHEMAS = "n.nspname <> all($1::text[]) and n.nspname not like 'pg\\_%'"


def _acl(column: str) -> str:
    """An ACL as sorted text: grant order is not what we compare."""
    return f"array(select a::text from unnest({column}) a order by 1)"


QUERIES = {
    "schema": f"select n.nspname, {_acl('n.nspacl')} from pg_namespace n where {_SCHEMAS}",
    "relation": f"""
        select n.nspname, c.relname, c.relkind::text, c.relrowsecurity, c.relforcerowsecurity,
               {_acl("c.relacl")}
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where {_SCHEMAS} and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')""",
    "column": f"""
        select n.nspname, c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, pg_get_expr(d.adbin, d.adrelid), {_acl("a.attacl")}
          from pg_attribute a join pg_class c on c.oid = a.attrelid
          join pg_namespace n on n.oid = c.relnamespace
          left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
         where {_SCHEMAS} and c.relkind in ('r', 'p', 'v', 'm', 'f')
           and a.attnum > 0 and not a.attisdropped""",
    "policy": f"""
        select p.schemaname::text, p.tablename::text, p.policyname::text, p.permissive, p.cmd,
               array(select r::text from unnest(p.roles) r order by 1), p.qual, p.with_check
          from pg_policies p join pg_namespace n on n.nspname = p.schemaname where {_SCHEMAS}""",
    "function": f"""
        select n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), p.prokind::text,
               p.prosecdef, p.proconfig, {_acl("p.proacl")},
               md5(case when p.prokind in ('f', 'p') then pg_get_functiondef(p.oid)
                        else p.prosrc end)
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace where {_SCHEMAS}""",
    "trigger": f"""
        select n.nspname, c.relname, t.tgname, t.tgenabled::text, pg_get_triggerdef(t.oid)
          from pg_trigger t join pg_class c on c.oid = t.tgrelid
          join pg_namespace n on n.oid = c.relnamespace where {_SCHEMAS} and not t.tgisinternal""",
    "constraint": f"""
        select n.nspname, c.relname, k.conname, pg_get_constraintdef(k.oid)
          from pg_constraint k join pg_class c on c.oid = k.conrelid
          join pg_namespace n on n.oid = c.relnamespace where {_SCHEMAS}""",
    "index": f"""
        select n.nspname, c.relname, pg_get_indexdef(c.oid)
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where {_SCHEMAS} and c.relkind in ('i', 'I')""",
    "enum": f"""
        select n.nspname, t.typname, array_agg(e.enumlabel::text order by e.enumsortorder)
          from pg_enum e join pg_type t on t.oid = e.enumtypid
          join pg_namespace n on n.oid = t.typnamespace where {_SCHEMAS}
         group by 1, 2""",
    "default privilege": f"""
        select d.defaclrole::regrole::text, coalesce(n.nspname, '*'), d.defaclobjtype::text,
               {_acl("d.defaclacl")}
          from pg_default_acl d left join pg_namespace n on n.oid = d.defaclnamespace
         where coalesce(n.nspname, '*') <> all($1::text[])""",
}

Row = tuple[object, ...]
Snapshot = dict[str, set[Row]]


def _hashable(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


async def snapshot(conn: Connection) -> Snapshot:
    result: Snapshot = {}
    for kind, query in QUERIES.items():
        rows = await conn.fetch(query, _NOT_SCHEMA)
        result[kind] = {tuple(_hashable(v) for v in row.values()) for row in rows}
    return result


def differences(a: Snapshot, b: Snapshot, *, a_name: str, b_name: str) -> list[str]:
    """One line per object that is not the same in both, naming where it is."""
    lines: list[str] = []
    for kind in sorted(a.keys() | b.keys()):
        rows_a, rows_b = a.get(kind, set()), b.get(kind, set())
        lines += sorted(f"{kind}: only in {a_name}: {row}" for row in rows_a - rows_b)
        lines += sorted(f"{kind}: only in {b_name}: {row}" for row in rows_b - rows_a)
    return lines


def supabase_cli() -> Path:
    """The pinned CLI, or a failure that says how to get it (tests never skip)."""
    package = CLI_DIR / "node_modules" / "supabase" / "package.json"
    installed = json.loads(package.read_text())["version"] if package.exists() else None
    if not CLI.exists() or installed != CLI_VERSION:
        pytest.fail(
            f"The Supabase CLI {CLI_VERSION} is not in {CLI_DIR} (found {installed}):"
            " run `make supabase-cli`"
        )
    return CLI


async def apply_local(db_url: str, *, supabase_dir: Path) -> None:
    """What a hosted project already has (supabase/local), file by file as psql would."""
    conn = await asyncpg.connect(db_url)
    try:
        for path in sorted((supabase_dir / "local").glob("*.sql")):
            await conn.execute(path.read_text())
    finally:
        await conn.close()


async def supabase_db_push(db_url: str, *, supabase_dir: Path, scratch: Path) -> str:
    """`supabase db push` of the migrations alone: the CLI's project holds nothing else."""
    project = scratch / "cli" / "supabase"
    project.mkdir(parents=True)
    shutil.copy(supabase_dir / "config.toml", project / "config.toml")
    shutil.copytree(supabase_dir / "migrations", project / "migrations")
    env = {
        **os.environ,
        "SUPABASE_HOME": str(scratch / "cli-home"),
        "SUPABASE_TELEMETRY_DISABLED": "1",
        "DO_NOT_TRACK": "1",
        "SUPABASE_NO_UPDATE_NOTIFIER": "1",
    }
    process = await asyncio.create_subprocess_exec(
        str(supabase_cli()),
        *("db", "push", "--db-url", f"{db_url}?sslmode=disable", "--yes", "--include-all"),
        *("--workdir", str(project.parent)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise AssertionError(f"supabase db push failed ({process.returncode}):\n{text}")
    return text


async def migrate_file_by_file(
    db_url: str, *, supabase_dir: Path, scratch: Path
) -> dict[str, list[str]]:
    """`connectgain db migrate`, one migration file at a time; after each, what of the
    exposed schemas could leak. A table must never wait for a later file to be closed."""
    project = scratch / "supabase"
    shutil.copytree(supabase_dir / "local", project / "local")
    (project / "migrations").mkdir()
    found: dict[str, list[str]] = {}
    for path in sorted((supabase_dir / "migrations").glob("*.sql")):
        shutil.copy(path, project / "migrations" / path.name)
        await migrate(db_url, project, include_local=not found)
        conn = await asyncpg.connect(db_url)
        try:
            found[path.name] = await exposure_problems(conn, exposed_schemas())
        finally:
            await conn.close()
    return found
