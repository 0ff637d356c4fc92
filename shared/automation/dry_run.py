"""A dry run: would a rule match this record, and what would it do? Acts on nothing.

The record is the trigger's subject (a message for message.received) unless
`entity` names another of its records. What the event itself carries beyond its
record (the tag a *.tag_added event added) is given in `payload`, checked against
the trigger: a key the trigger's event does not carry, or a row not of the
organization, is a 422 naming it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import Field

from shared.automation.actions import describe, parse_actions
from shared.automation.conditions import evaluate, parse_conditions
from shared.automation.rules import get
from shared.automation.triggers import ENTITIES, TRIGGERS, resolve, roots_of
from shared.crm.inputs import Strict
from shared.db import Connection
from shared.errors import NotFound, Unprocessable


class DryRun(Strict):
    record_id: UUID
    entity: str | None = Field(
        default=None, description="Which of the trigger's records record_id is; default its subject"
    )
    payload: dict[str, Any] = Field(
        default_factory=dict,
        max_length=8,
        description="What the trigger's event carries beyond its record, as the rule reads it:"
        " `tag_id` (the tag added) for a *.tag_added rule",
    )


def _refuse(field: str, message: str) -> Unprocessable:
    return Unprocessable(f"{field}: {message}", details=[{"field": field, "message": message}])


async def _payload_records(
    conn: Connection, organization_id: UUID, trigger: str, payload: dict[str, Any], named: set[str]
) -> dict[str, UUID]:
    """The records the payload names, each checked to be the organization's; a record the
    rule's conditions read must be given."""
    carried = {key: entity for entity, key in TRIGGERS[trigger].extra}
    found: dict[str, UUID] = {}
    for key, value in payload.items():
        if key not in carried:
            takes = ", ".join(carried) if carried else "nothing a rule reads"
            raise _refuse(f"payload.{key}", f"a {trigger} event carries {takes}")
        entity = ENTITIES[carried[key]]
        try:
            record = UUID(str(value))
        except ValueError:
            raise _refuse(f"payload.{key}", "must be a UUID") from None
        if not await conn.fetchval(
            f"select exists (select 1 from {entity.table} where organization_id = $1 and id = $2)",
            organization_id,
            record,
        ):
            raise _refuse(f"payload.{key}", f"no {entity.name} {record} in this organization")
        found[carried[key]] = record
    for key, name in carried.items():
        if name in named and name not in found:
            raise _refuse(
                f"payload.{key}", f"the rule's conditions read the {name}; give the {key}"
            )
    return found


async def dry_run(
    *, conn: Connection, rule_id: UUID, trial: DryRun, organization_id: UUID | None = None
) -> dict[str, Any]:
    """The rule evaluated against a record as the caller sees it."""
    rule = await get(conn=conn, rule_id=rule_id, organization_id=organization_id)
    org, trigger = rule["organization_id"], rule["trigger"]
    allowed = roots_of(trigger)
    root = trial.entity or allowed[0]
    if root not in allowed:
        raise Unprocessable(
            f"entity: a {trigger} rule has {', '.join(allowed)} records",
            details=[{"field": "entity", "message": f"one of {', '.join(allowed)}"}],
        )
    parsed = await parse_conditions(
        conn=conn, organization_id=org, trigger=trigger, conditions=rule["conditions"]
    )
    extra = await _payload_records(conn, org, trigger, trial.payload, set(parsed))
    records = await resolve(conn=conn, organization_id=org, root=root, record_id=trial.record_id)
    if not records:
        raise NotFound(f"No such {ENTITIES[root].name}")
    records |= extra
    results = await evaluate(conn=conn, organization_id=org, parsed=parsed, records=records)
    matched = all(results.values())
    actions = parse_actions(rule["actions"])
    return {
        "rule_id": rule_id,
        "records": records,
        "conditions": results,
        "matched": matched,
        "actions": [describe(trigger, a) for a in actions] if matched else [],
    }
