"""Reading and writing rows of the CRM entities inside the caller's RLS transaction.

Lists are one query per page (tags and other per-row details are subqueries of
that query); writes name their columns from the input models, never from the
request; a reference to a row the caller cannot see fails like one that does
not exist, with the field named.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import BaseModel

from shared.crm.entities import Entity
from shared.db import Connection
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from shared.filters import Catalog, compile_filter, parse_filter
from shared.pagination import after_cursor, check_limit, decode_cursor, encode_cursor, parse_sort
from shared.sql import Params

_SORT_VALUE = "sort_value__"


@dataclass(frozen=True)
class Page:
    data: list[dict[str, Any]]
    next_cursor: str | None


async def custom_field_definitions(
    *, conn: Connection, organization_id: UUID, entity: str
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "select key, type::text as type, options from public.custom_field_definitions"
        " where organization_id = $1 and entity = $2 order by position, key",
        organization_id,
        entity,
    )
    return [dict(r) for r in rows]


async def catalog_of(*, conn: Connection, organization_id: UUID, entity: Entity) -> Catalog:
    """The entity's filterable fields in this organization: standard and custom."""
    if entity.custom_fields is None:
        return entity.catalog
    definitions = await custom_field_definitions(
        conn=conn, organization_id=organization_id, entity=entity.custom_fields
    )
    return entity.catalog.with_custom_fields(definitions)


async def list_page(
    *,
    conn: Connection,
    entity: Entity,
    organization_id: UUID,
    filter: Any = None,
    sort: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
    within: Mapping[str, UUID] | None = None,
) -> Page:
    """One page of `entity`, filtered, sorted and after `cursor`; `within` pins columns."""
    order = parse_sort(sort, entity.sorts, entity.default_sort)
    check_limit(limit)
    after = decode_cursor(cursor, order) if cursor else None
    catalog = (
        await catalog_of(conn=conn, organization_id=organization_id, entity=entity)
        if filter is not None
        else entity.catalog
    )
    node = parse_filter(filter, catalog)
    a = entity.alias
    params = Params(organization_id)
    conditions = [f"{a}.organization_id = $1"]
    conditions += [
        f"{a}.{column} = {params.add(value, 'uuid')}" for column, value in (within or {}).items()
    ]
    conditions.append(compile_filter(node, catalog, params))
    conditions.append(after_cursor(order, after, f"{a}.id", params))
    rows = await conn.fetch(
        f"select {entity.columns}, {order.key.sql} as {_SORT_VALUE}"
        f" from {entity.table} {a} where {' and '.join(conditions)}"
        f" order by {order.order_by(f'{a}.id')} limit {params.add(limit + 1)}",
        *params.values,
    )
    more = len(rows) > limit
    page = rows[:limit]
    next_cursor = encode_cursor(order, dict(page[-1]), _SORT_VALUE) if more else None
    return Page(
        data=[{k: v for k, v in r.items() if k != _SORT_VALUE} for r in page],
        next_cursor=next_cursor,
    )


async def get_record(
    *, conn: Connection, entity: Entity, organization_id: UUID, record_id: UUID
) -> dict[str, Any]:
    a = entity.alias
    row = await conn.fetchrow(
        f"select {entity.columns} from {entity.table} {a}"
        f" where {a}.organization_id = $1 and {a}.id = $2",
        organization_id,
        record_id,
    )
    if row is None:
        raise NotFound(f"No such {entity.name}")
    return dict(row)


def columns_of(entity: Entity, values: Mapping[str, Any]) -> dict[str, Any]:
    """An input model's fields as the columns they write, by the entity's rules for null
    (Entity.keeps_on_null, Entity.null_writes). Tags are not a column: they are linked
    apart (shared/crm/tags.py). A nested model is stored as its object without nulls."""
    columns: dict[str, Any] = {}
    for name, value in values.items():
        if name == "tags" and entity.catalog.tags is not None:
            continue
        if value is None:
            if name in entity.keeps_on_null:
                continue
            value = entity.null_writes.get(name)
        elif isinstance(value, BaseModel):
            value = value.model_dump(exclude_none=True)
        columns[name] = value
    return columns


async def insert_record(
    *, conn: Connection, entity: Entity, organization_id: UUID, values: Mapping[str, Any]
) -> UUID:
    """Insert a row; `values` are an input model's fields (see `columns_of`), the columns
    named by our own models."""
    values = columns_of(entity, values)
    params = Params(organization_id)
    placeholders = [params.add(v) for v in values.values()]
    with named_references(entity):
        record_id: UUID = await conn.fetchval(
            f"insert into {entity.table} (organization_id, {', '.join(values)})"
            f" values ($1, {', '.join(placeholders)}) returning id",
            *params.values,
        )
    return record_id


async def update_record(
    *,
    conn: Connection,
    entity: Entity,
    organization_id: UUID,
    record_id: UUID,
    values: Mapping[str, Any],
) -> None:
    """Update the columns of the fields sent (see `columns_of`) of a row, merging those
    of Entity.merges (404 when the caller cannot see it)."""
    values = columns_of(entity, values)
    if not values:  # nothing to change; an unknown row is still a 404
        await get_record(
            conn=conn, entity=entity, organization_id=organization_id, record_id=record_id
        )
        return
    params = Params(organization_id, record_id)
    assignments = [
        f"{column} = " + entity.merges.get(column, "{}").format(params.add(value))
        for column, value in values.items()
    ]
    with named_references(entity):
        found = await conn.fetchval(
            f"update {entity.table} set {', '.join(assignments)}"
            " where organization_id = $1 and id = $2 returning true",
            *params.values,
        )
    if not found:
        await _refuse_invisible_or_forbidden(conn, entity, organization_id, record_id, "change")


async def delete_record(
    *, conn: Connection, entity: Entity, organization_id: UUID, record_id: UUID
) -> None:
    """Delete a row; 404 when invisible, 403 when visible but the role may not delete it."""
    deleted = await conn.fetchval(
        f"delete from {entity.table} where organization_id = $1 and id = $2 returning true",
        organization_id,
        record_id,
    )
    if not deleted:
        await _refuse_invisible_or_forbidden(conn, entity, organization_id, record_id, "delete")


async def _refuse_invisible_or_forbidden(
    conn: Connection, entity: Entity, organization_id: UUID, record_id: UUID, action: str
) -> None:
    """After a write matched nothing: 404 if the caller cannot see the row, else 403."""
    visible = await conn.fetchval(
        f"select true from {entity.table} where organization_id = $1 and id = $2",
        organization_id,
        record_id,
    )
    if visible:
        raise Forbidden(f"Your role may not {action} this {entity.name}")
    raise NotFound(f"No such {entity.name}")


# ---- naming the field behind a database refusal ----------------------------------------------

_UNIQUE_FIELDS = {
    "contacts_org_email_key": "email",
    "contacts_org_phone_key": "phone",
    "companies_org_domain_key": "domain",
    "tags_org_name_key": "name",
}


def reference_field(constraint: str | None, table: str) -> str | None:
    """The column of a foreign key: ours are named <table>_<thing>_fk (for thing_id);
    Postgres names the inbox's <table>_organization_id_<column>_fkey."""
    prefix = table.removeprefix("public.") + "_"
    if not constraint or not constraint.startswith(prefix):
        return None
    rest = constraint.removeprefix(prefix)
    if rest.endswith("_fk"):
        return rest.removesuffix("_fk") + "_id"
    if rest.endswith("_fkey"):
        return rest.removesuffix("_fkey").removeprefix("organization_id_")
    return None


@contextmanager
def named_references(entity: Entity) -> Iterator[None]:
    try:
        yield
    except asyncpg.ForeignKeyViolationError as exc:
        field = reference_field(exc.constraint_name, entity.table) or "a reference"
        if field == "assignee_id":
            message = "assignee_id: not a member of this organization"
        else:
            message = f"{field}: no such {field.removesuffix('_id')} in this organization"
        raise Unprocessable(message, details=[{"field": field, "message": message}]) from exc
    except asyncpg.UniqueViolationError as exc:
        unique = _UNIQUE_FIELDS.get(exc.constraint_name or "")
        if unique is None:
            raise
        message = f"{unique}: another {entity.name} already has this {unique}"
        raise Conflict(message, details=[{"field": unique, "message": message}]) from exc
