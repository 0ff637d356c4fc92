"""Saving and reading an organization's rules, inside the caller's RLS transaction.

Members read; managers and above write (the policies say the same, and API keys
are refused by trigger: rules are configuration). A rule is checked whole before
anything is written: its trigger, its conditions against the filter language,
and every action against the trigger and the organization's rows.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, Field, WithJsonSchema

from shared import members
from shared.automation.actions import Actions, check_actions, describe, parse_actions
from shared.automation.conditions import evaluate, parse_conditions
from shared.automation.triggers import ENTITIES, TRIGGERS, TRIGGERS_DOC, resolve, roots_of
from shared.crm.inputs import Strict
from shared.db import Connection, Database, fetch_found
from shared.errors import NotFound, Unprocessable

COLUMNS = (
    "id, organization_id, name, position, enabled, trigger, conditions, actions, created_by,"
    " created_at, updated_at"
)
RUN_COLUMNS = (
    "id, rule_id, event_id, event_type, record_id, status, matched, actions, reason, depth,"
    " created_at"
)


def _known(name: str) -> str:
    if name not in TRIGGERS:
        raise ValueError(f"unknown trigger {name!r}; known: {', '.join(TRIGGERS)}")
    return name


TriggerName = Annotated[
    str,
    AfterValidator(_known),
    WithJsonSchema({"type": "string", "enum": list(TRIGGERS), "description": TRIGGERS_DOC}),
]
Conditions = Annotated[
    dict[str, Any],
    Field(
        description="Per record of the trigger (conversation, contact …): a filter in the"
        " API's filter language; all must hold",
        max_length=5,
    ),
]


class RuleIn(Strict):
    organization_id: UUID
    name: str = Field(min_length=1, max_length=200)
    trigger: TriggerName
    conditions: Conditions = Field(default_factory=dict)
    actions: Actions
    enabled: bool = True
    position: int | None = Field(default=None, ge=0, le=100000, description="Default: last")


class RuleChange(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    trigger: TriggerName | None = None
    conditions: Conditions | None = None
    actions: Actions | None = None
    enabled: bool | None = None
    position: int | None = Field(default=None, ge=0, le=100000)


async def _check(
    db: Database, conn: Connection, organization_id: UUID, trigger: str, rule: dict[str, Any]
) -> None:
    await parse_conditions(
        conn=conn, organization_id=organization_id, trigger=trigger, conditions=rule["conditions"]
    )
    actions = parse_actions(rule["actions"])
    # References are checked past RLS (webhook endpoints are admins' to see), each query
    # scoped to the organization the caller manages.
    async with db.service_conn() as service:
        await check_actions(
            conn=service, organization_id=organization_id, trigger=trigger, actions=actions
        )


async def create(*, db: Database, conn: Connection, rule: RuleIn) -> dict[str, Any]:
    org = rule.organization_id
    await members.require_role(conn=conn, organization_id=org, at_least="manager")
    body = rule.model_dump(mode="json")
    await _check(db, conn, org, rule.trigger, body)
    row = await conn.fetchrow(
        f"""
        insert into public.automation_rules
               (organization_id, name, position, enabled, trigger, conditions, actions)
        values ($1, $2, coalesce($3, (select coalesce(max(position) + 1, 0)
                                        from public.automation_rules where organization_id = $1)),
                $4, $5, $6, $7)
        returning {COLUMNS}
        """,
        org,
        rule.name,
        rule.position,
        rule.enabled,
        rule.trigger,
        body["conditions"],
        body["actions"],
    )
    assert row is not None
    return dict(row)


async def list_rules(*, conn: Connection, organization_id: UUID) -> list[dict[str, Any]]:
    await members.require_role(conn=conn, organization_id=organization_id, at_least="agent")
    rows = await conn.fetch(
        f"select {COLUMNS} from public.automation_rules where organization_id = $1"
        " order by position, created_at, id",
        organization_id,
    )
    return [dict(r) for r in rows]


async def get(*, conn: Connection, rule_id: UUID) -> dict[str, Any]:
    return await fetch_found(
        conn,
        "No such automation rule",
        f"select {COLUMNS} from public.automation_rules where id = $1",
        rule_id,
    )


async def update(
    *, db: Database, conn: Connection, rule_id: UUID, change: RuleChange
) -> dict[str, Any]:
    current = await get(conn=conn, rule_id=rule_id)
    org = current["organization_id"]
    await members.require_role(conn=conn, organization_id=org, at_least="manager")
    changes = change.model_dump(mode="json", exclude_unset=True)
    if any(changes.get(k) is None and k in changes for k in ("name", "trigger", "actions")):
        raise Unprocessable("name, trigger and actions cannot be null")
    merged = {**current, **{k: v for k, v in changes.items() if v is not None}}
    await _check(db, conn, org, merged["trigger"], merged)
    row = await conn.fetchrow(
        f"""
        update public.automation_rules
           set name = $2, trigger = $3, conditions = $4, actions = $5, enabled = $6,
               position = $7
         where id = $1
        returning {COLUMNS}
        """,
        rule_id,
        merged["name"],
        merged["trigger"],
        merged["conditions"],
        merged["actions"],
        merged["enabled"],
        merged["position"],
    )
    assert row is not None
    return dict(row)


async def delete(*, conn: Connection, rule_id: UUID) -> None:
    current = await get(conn=conn, rule_id=rule_id)
    org = current["organization_id"]
    await members.require_role(conn=conn, organization_id=org, at_least="manager")
    await conn.execute("delete from public.automation_rules where id = $1", rule_id)


async def dry_run(
    *, conn: Connection, rule_id: UUID, record_id: UUID, entity: str | None
) -> dict[str, Any]:
    """Evaluates the rule against a record, as the caller sees it; acts on nothing. The
    record is the trigger's subject (a message for message.received) unless `entity`
    names another of its records."""
    rule = await get(conn=conn, rule_id=rule_id)
    org, trigger = rule["organization_id"], rule["trigger"]
    allowed = roots_of(trigger)
    root = entity or allowed[0]
    if root not in allowed:
        raise Unprocessable(
            f"entity: a {trigger} rule has {', '.join(allowed)} records",
            details=[{"field": "entity", "message": f"one of {', '.join(allowed)}"}],
        )
    records = await resolve(conn=conn, organization_id=org, root=root, record_id=record_id)
    if not records:
        raise NotFound(f"No such {ENTITIES[root].name}")
    parsed = await parse_conditions(
        conn=conn, organization_id=org, trigger=trigger, conditions=rule["conditions"]
    )
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


async def runs(
    *, conn: Connection, rule_id: UUID, before: int | None, limit: int
) -> list[dict[str, Any]]:
    rule = await get(conn=conn, rule_id=rule_id)
    rows = await conn.fetch(
        f"select {RUN_COLUMNS} from public.automation_runs"
        " where organization_id = $4 and rule_id = $1"
        " and ($2::bigint is null or id < $2) order by id desc limit $3",
        rule_id,
        before,
        limit,
        rule["organization_id"],
    )
    return [dict(r) for r in rows]
