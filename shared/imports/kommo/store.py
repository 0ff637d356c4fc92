"""Writing a page of Kommo records: set-based, one statement per entity page
(statements.py), in the importer's service transaction, so every statement names
the organization.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from shared.db import Connection
from shared.imports.kommo.mapping import FieldDef
from shared.imports.kommo.statements import FIELDS, SQL


@dataclass(frozen=True)
class Written:
    ids: dict[str, UUID]  # Kommo id → ours
    created: int
    updated: int


async def _run(
    conn: Connection, sql: str, org: UUID, job: UUID, rows: list[dict[str, Any]]
) -> Written:
    if not rows:
        return Written(ids={}, created=0, updated=0)
    for n, row in enumerate(rows):
        row["ord"] = n
    found = await conn.fetch(sql, org, _plain(rows), job)
    return Written(
        ids={r["ext"]: r["id"] for r in found},
        created=sum(1 for r in found if r["is_new"]),
        updated=found[0]["updated"],
    )


def _storable(value: Any) -> Any:
    """A value as jsonb takes it: ids as text; no NUL, no lone surrogate (which jsonb
    refuses, and which would fail the whole page)."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _storable(v) for k, v in row.items()} for row in rows]


async def upsert(
    conn: Connection, entity: str, *, org: UUID, job: UUID, rows: list[dict[str, Any]]
) -> Written:
    return await _run(conn, SQL[entity], org, job, rows)


async def upsert_fields(
    conn: Connection, *, org: UUID, job: UUID, fields: list[FieldDef]
) -> list[FieldDef]:
    """Define the fields (or update their labels and options); the definitions as stored,
    whose type wins over the mapped one should a field with the key exist already."""
    if not fields:
        return []
    rows = [
        {
            "ext": str(f.kommo_id),
            "entity": f.entity,
            "key": f.key,
            "label": f.label,
            "type": f.type,
            "options": f.options,
            "position": n,
        }
        for n, f in enumerate(fields)
    ]
    stored = {(r["entity"], r["key"]): r for r in await conn.fetch(FIELDS, org, rows, job)}
    result = []
    for f in fields:
        row = stored[(f.entity, f.key)]
        result.append(
            FieldDef(
                kommo_id=f.kommo_id,
                entity=f.entity,
                key=f.key,
                label=f.label,
                type=row["type"],
                options=row["options"],
                kommo_type=f.kommo_type,
                code=f.code,
            )
        )
    return result


TAGS = """
with input as (select * from jsonb_to_recordset($2::jsonb) as r(id uuid, tag text)),
names as (select distinct on (lower(tag)) tag from input order by lower(tag), tag),
new_tags as (
  insert into public.tags (organization_id, name) select $1, n.tag from names n
  on conflict (organization_id, lower(name)) do nothing
  returning id, lower(name) as lname),
all_tags as (
  select id, lname from new_tags
  union all
  select t.id, lower(t.name) from public.tags t
   where t.organization_id = $1 and lower(t.name) in (select lower(tag) from names))
insert into public.{table} (organization_id, {column}, tag_id)
select distinct $1, i.id, a.id from input i join all_tags a on a.lname = lower(i.tag)
on conflict do nothing
"""


async def tag(
    conn: Connection, *, org: UUID, table: str, column: str, links: list[dict[str, Any]]
) -> None:
    """Tag records by name ({id, tag} pairs), creating the tags the organization lacks."""
    if links:
        await conn.execute(TAGS.format(table=table, column=column), org, _plain(links))


async def members_by_email(conn: Connection, *, org: UUID, emails: list[str]) -> dict[str, UUID]:
    rows = await conn.fetch(
        "select lower(u.email) as email, m.user_id from public.organization_members m"
        " join auth.users u on u.id = m.user_id"
        " where m.organization_id = $1 and lower(u.email) = any($2::text[])",
        org,
        emails,
    )
    return {r["email"]: r["user_id"] for r in rows}


async def lookup(
    conn: Connection, *, org: UUID, entity: str, table: str, ids: list[str]
) -> dict[str, UUID]:
    """Our ids of these Kommo records, where they were imported and still exist."""
    if not ids:
        return {}
    rows = await conn.fetch(
        "select x.external_id, x.internal_id from public.import_external_refs x"
        f" join public.{table} t on t.organization_id = x.organization_id and t.id = x.internal_id"
        " where x.organization_id = $1 and x.source = 'kommo' and x.entity = $2"
        " and x.external_id = any($3::text[])",
        org,
        entity,
        ids,
    )
    return {r["external_id"]: r["internal_id"] for r in rows}
