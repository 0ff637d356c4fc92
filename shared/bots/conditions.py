"""A condition node's filters: the filter language over the contact, the conversation and
the flow's variables, run as SQL as automation conditions are.

The variables are a record of their own: fields `variables.<name>` typed by the flow's
declarations, read from a jsonb value passed as a parameter, compiled by the same
compiler as every other filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from shared.automation.conditions import evaluate, parse_conditions
from shared.db import Connection
from shared.filters import Catalog, Field, Kind, compile_filter, parse_filter
from shared.sql import Params

_KINDS = {"text": Kind.TEXT, "number": Kind.NUMBER, "boolean": Kind.BOOLEAN, "date": Kind.DATE}


def variables_catalog(types: Mapping[str, str]) -> Catalog:
    fields = {
        f"variables.{name}": Field(name=f"variables.{name}", kind=_KINDS[kind], custom_key=name)
        for name, kind in types.items()
    }
    return Catalog(alias="v", fields=fields, custom_column="v.vars")


async def holds(
    *,
    conn: Connection,
    organization_id: UUID,
    contact: Any,
    conversation: Any,
    variables_filter: Any,
    types: Mapping[str, str],
    variables: dict[str, Any],
    records: dict[str, UUID],
) -> bool:
    """Whether every given filter holds: the records' through automation's evaluation
    (one statement), the variables' against their jsonb."""
    given = {k: v for k, v in (("contact", contact), ("conversation", conversation)) if v}
    if given:
        parsed = await parse_conditions(
            conn=conn,
            organization_id=organization_id,
            trigger="message.received",
            conditions=given,
        )
        held = await evaluate(
            conn=conn, organization_id=organization_id, parsed=parsed, records=records
        )
        if not all(held.values()):
            return False
    if variables_filter is None:
        return True
    catalog = variables_catalog(types)
    params = Params(variables)
    compiled = compile_filter(parse_filter(variables_filter, catalog), catalog, params)
    result = await conn.fetchval(
        f"select exists (select 1 from (select $1::jsonb as vars) v where {compiled})",
        *params.values,
    )
    return bool(result)
