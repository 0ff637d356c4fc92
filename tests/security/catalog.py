"""What the catalog says about every relation the SPA can reach through PostgREST."""

from __future__ import annotations

import tomllib

from shared.db import Connection
from shared.settings import PROJECT_DIR


def exposed_schemas() -> list[str]:
    config = tomllib.loads((PROJECT_DIR / "supabase" / "config.toml").read_text())
    schemas: list[str] = config["api"]["schemas"]
    return schemas


async def exposed_tables(conn: Connection, schemas: list[str]) -> list[str]:
    rows = await conn.fetch(
        "select n.nspname || '.' || c.relname as name from pg_class c"
        " join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = any($1) and c.relkind in ('r', 'p') and not c.relispartition"
        " order by 1",
        schemas,
    )
    return [r["name"] for r in rows]


async def exposure_problems(conn: Connection, schemas: list[str]) -> list[str]:
    """Every way a table or view in `schemas` could leak across organizations."""
    rows = await conn.fetch(
        """
        select n.nspname || '.' || c.relname as name, c.relkind::text as relkind,
               c.relrowsecurity as rls,
               exists (select 1 from pg_policy p where p.polrelid = c.oid) as has_policy,
               exists (select 1 from pg_attribute a
                        where a.attrelid = c.oid and a.attname = 'organization_id'
                          and not a.attisdropped) as has_org,
               exists (select 1 from pg_index i
                        join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
                        where i.indrelid = c.oid and a.attname = 'organization_id') as org_indexed,
               coalesce('security_invoker=true' = any (c.reloptions)
                        or 'security_invoker=on' = any (c.reloptions), false) as invoker
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = any($1) and c.relkind in ('r', 'p', 'v', 'm')
           and not c.relispartition
         order by 1
        """,
        schemas,
    )
    problems: list[str] = []
    for r in rows:
        if r["relkind"] in ("v", "m"):
            if not r["invoker"]:
                problems.append(f"{r['name']}: view without security_invoker bypasses RLS")
            continue
        if not r["rls"]:
            problems.append(f"{r['name']}: row level security is not enabled")
        elif not r["has_policy"]:
            problems.append(f"{r['name']}: row level security is enabled but has no policy")
        if r["has_org"] and not r["org_indexed"]:
            problems.append(f"{r['name']}: no index leads with organization_id")
    return problems
