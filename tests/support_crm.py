"""Builders for CRM rows, made as the owner role (RLS bypassed) for arranging tests."""

from __future__ import annotations

import itertools
from typing import Any
from uuid import UUID

from shared.db import Connection

_numbers = itertools.count(1)


async def _insert(db: Connection, table: str, org: UUID, values: dict[str, Any]) -> Any:
    columns = ", ".join(["organization_id", *values])
    params = ", ".join(f"${i}" for i in range(1, len(values) + 2))
    return await db.fetchval(
        f"insert into public.{table} ({columns}) values ({params}) returning id",
        org,
        *values.values(),
    )


async def default_pipeline(db: Connection, org: UUID) -> UUID:
    pipeline: UUID = await db.fetchval(
        "select id from public.pipelines where organization_id = $1 and is_default", org
    )
    return pipeline


async def stages_of(db: Connection, pipeline: UUID) -> dict[str, UUID]:
    """Stage name → id, e.g. {"Lead": …, "Closed Won": …}."""
    rows = await db.fetch("select name, id from public.stages where pipeline_id = $1", pipeline)
    return {r["name"]: r["id"] for r in rows}


async def make_company(db: Connection, org: UUID, **fields: Any) -> UUID:
    company: UUID = await _insert(
        db, "companies", org, {"name": f"Company {next(_numbers)}", **fields}
    )
    return company


async def make_deal(db: Connection, org: UUID, **fields: Any) -> UUID:
    deal: UUID = await _insert(db, "deals", org, {"title": f"Deal {next(_numbers)}", **fields})
    return deal


async def make_tag(db: Connection, org: UUID, name: str | None = None, **fields: Any) -> UUID:
    tag: UUID = await _insert(db, "tags", org, {"name": name or f"tag{next(_numbers)}", **fields})
    return tag


async def tag(db: Connection, org: UUID, table: str, column: str, row: UUID, tag_id: UUID) -> None:
    """Apply a tag: tag(db, org, "contact_tags", "contact_id", contact, vip)."""
    await db.execute(
        f"insert into public.{table} (organization_id, {column}, tag_id) values ($1, $2, $3)",
        org,
        row,
        tag_id,
    )


async def make_task(db: Connection, org: UUID, **fields: Any) -> UUID:
    task: UUID = await _insert(db, "tasks", org, {"title": f"Task {next(_numbers)}", **fields})
    return task


async def make_note(db: Connection, org: UUID, **fields: Any) -> UUID:
    note: UUID = await _insert(db, "notes", org, {"body": f"Note {next(_numbers)}", **fields})
    return note


async def define_field(
    db: Connection,
    org: UUID,
    entity: str,
    key: str,
    type_: str,
    *,
    options: list[str] | None = None,
    required: bool = False,
) -> UUID:
    field: UUID = await _insert(
        db,
        "custom_field_definitions",
        org,
        {
            "entity": entity,
            "key": key,
            "label": key.replace("_", " ").title(),
            "type": type_,
            "options": options,
            "required": required,
        },
    )
    return field
