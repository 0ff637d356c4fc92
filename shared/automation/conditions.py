"""A rule's conditions: the public API's filter language over the trigger's records.

    {"conversation": <filter>, "contact": <filter>, …}

Each filter is parsed against the entity's catalog in the organization (custom
fields included) by shared/filters, and evaluated by running the compiled
condition as SQL against the one record, so a condition means exactly what the
same `filter=` means on the API's lists. All of them must hold; a record the
event does not have (a deal without a contact) fails its condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from shared.automation.triggers import ENTITIES, records_of
from shared.crm.records import catalog_of
from shared.db import Connection
from shared.errors import Unprocessable
from shared.filters import Catalog, Node, compile_filter, parse_filter
from shared.sql import Params

# entity → (its filter, the catalog it was parsed against)
Parsed = dict[str, tuple[Node | None, Catalog]]


async def parse_conditions(
    *,
    conn: Connection,
    organization_id: UUID,
    trigger: str,
    conditions: Mapping[str, Any],
    catalogs: dict[str, Catalog] | None = None,
) -> Parsed:
    """The parsed filters, or a 422 naming the entity and the place in its filter."""
    allowed = records_of(trigger)
    parsed: Parsed = {}
    catalogs = {} if catalogs is None else catalogs
    for name, raw in conditions.items():
        if name not in allowed:
            message = (
                f"conditions.{name}: a {trigger} rule has no {name} record;"
                f" it has {', '.join(allowed)}"
            )
            raise Unprocessable(
                message, details=[{"field": f"conditions.{name}", "message": message}]
            )
        if name not in catalogs:  # one read of the custom fields per entity, not per rule
            catalogs[name] = await catalog_of(
                conn=conn, organization_id=organization_id, entity=ENTITIES[name]
            )
        catalog = catalogs[name]
        try:
            parsed[name] = (parse_filter(raw, catalog), catalog)
        except Unprocessable as exc:
            details = [
                {**d, "field": f"conditions.{name}." + d["field"].removeprefix("filter.")}
                if d["field"].startswith("filter.")
                else {**d, "field": f"conditions.{name}"}
                for d in (exc.details or [])
            ]
            raise Unprocessable(
                f"conditions.{name}: {exc.message}", details=details or None
            ) from exc
    return parsed


async def evaluate(
    *,
    conn: Connection,
    organization_id: UUID,
    parsed: Parsed,
    records: Mapping[str, UUID],
) -> dict[str, bool]:
    """Whether each entity's condition holds for its record, in one statement."""
    if not parsed:
        return {}
    params = Params(organization_id)
    columns = []
    for index, (name, (node, catalog)) in enumerate(parsed.items()):
        entity = ENTITIES[name]
        a = entity.alias
        record = params.add(records.get(name), "uuid")
        compiled = compile_filter(node, catalog, params)
        columns.append(
            f"exists (select 1 from {entity.table} {a} where {a}.organization_id = $1"
            f" and {a}.id = {record} and {compiled}) as c{index}"
        )
    row = await conn.fetchrow(f"select {', '.join(columns)}", *params.values)
    assert row is not None
    return {name: bool(row[f"c{i}"]) for i, name in enumerate(parsed)}
