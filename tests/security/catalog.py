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


API_ROLES = ("anon", "authenticated")


async def executable_functions(conn: Connection) -> dict[str, tuple[frozenset[str], bool]]:
    """Every function outside the system schemas that an API role may execute:
    signature → (those roles, is it security definer). Functions that belong to an
    extension (pgcrypto …) are the extension's; they are left out."""
    async with conn.transaction():
        # fully qualified signatures, whatever the connection's search_path
        await conn.execute("set local search_path = ''")
        rows = await conn.fetch(
            """
            select p.oid::regprocedure::text as signature, p.prosecdef as definer,
                   array(select r from unnest($1::text[]) r
                          where has_function_privilege(r, p.oid, 'execute')) as roles
              from pg_catalog.pg_proc p
              join pg_catalog.pg_namespace n on n.oid = p.pronamespace
             where n.nspname not in ('pg_catalog', 'information_schema')
               and n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
               and not exists (select 1 from pg_catalog.pg_depend d
                                where d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                                  and d.objid = p.oid and d.deptype = 'e')
            """,
            list(API_ROLES),
        )
    return {r["signature"]: (frozenset(r["roles"]), r["definer"]) for r in rows if r["roles"]}
