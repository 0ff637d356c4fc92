"""The suite finds every exposed table by itself, and fails on any that could leak."""

from __future__ import annotations

from shared.db import Connection
from tests.security.catalog import exposed_schemas, exposed_tables, exposure_problems
from tests.security.registry import TABLES


async def test_every_exposed_table_has_rls_policies_and_an_organization_index(db: Connection):
    assert await exposure_problems(db, exposed_schemas()) == []


async def test_every_exposed_table_is_in_the_isolation_registry(db: Connection):
    tables = await exposed_tables(db, exposed_schemas())
    missing = sorted(set(tables) - set(TABLES))
    assert missing == [], f"add an entry to tests/security/registry.py for: {missing}"
    assert sorted(set(TABLES) - set(tables)) == [], "registry names a table that does not exist"


async def test_the_suite_catches_a_table_without_rls(db: Connection):
    await db.execute("create table public.throwaway (id int primary key)")
    problems = await exposure_problems(db, exposed_schemas())
    assert problems == ["public.throwaway: row level security is not enabled"]
    tables = await exposed_tables(db, exposed_schemas())
    assert "public.throwaway" in set(tables) - set(TABLES), "and it has no registry entry"


async def test_the_suite_catches_rls_without_a_policy(db: Connection):
    await db.execute(
        "create table public.throwaway (id int primary key);"
        " alter table public.throwaway enable row level security;"
    )
    assert await exposure_problems(db, exposed_schemas()) == [
        "public.throwaway: row level security is enabled but has no policy"
    ]


async def test_the_suite_catches_an_unindexed_organization_id(db: Connection):
    await db.execute(
        "create table public.throwaway (id int primary key, organization_id uuid);"
        " create index on public.throwaway (id, organization_id);"
        " alter table public.throwaway enable row level security;"
        " create policy p on public.throwaway for select to authenticated using (true);"
    )
    assert await exposure_problems(db, exposed_schemas()) == [
        "public.throwaway: no index leads with organization_id"
    ]


async def test_the_suite_catches_a_view_that_bypasses_rls(db: Connection):
    await db.execute("create view public.leaky as select id, name from public.organizations")
    assert await exposure_problems(db, exposed_schemas()) == [
        "public.leaky: view without security_invoker bypasses RLS"
    ]
    await db.execute("alter view public.leaky set (security_invoker = true)")
    assert await exposure_problems(db, exposed_schemas()) == []
