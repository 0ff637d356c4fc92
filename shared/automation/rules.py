"""Saving and reading an organization's rules, inside the caller's RLS transaction.

The automation-rules function (members' tokens) and the public API (cg_ keys)
both call these. Members and keys read; managers and write keys (which act as
managers) write, as the policies say. A rule is checked whole before anything is
written: its trigger, its conditions against the filter language, and every
action against the trigger and the organization's rows. The author a rule sends
messages as is set by the database from the caller (a key's: its issuer).
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, WithJsonSchema

from shared import members
from shared.automation.actions import ACTION_MODELS, Actions, check_actions, parse_actions
from shared.automation.conditions import parse_conditions
from shared.automation.triggers import TRIGGERS, TRIGGERS_DOC, records_of
from shared.crm.inputs import Strict
from shared.db import Connection, Database, fetch_found
from shared.errors import Forbidden, NotFound, Unprocessable

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


class RuleFields(Strict):
    name: str = Field(min_length=1, max_length=200)
    trigger: TriggerName
    conditions: Conditions = Field(default_factory=dict)
    actions: Actions
    enabled: bool = True
    position: int | None = Field(default=None, ge=0, le=100000, description="Default: last")


class RuleIn(RuleFields):
    organization_id: UUID


class RuleOrder(Strict):
    rule_ids: list[UUID] = Field(
        max_length=10000, description="Each of the organization's rules once, first to last"
    )


class RuleChange(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    trigger: TriggerName | None = None
    conditions: Conditions | None = None
    actions: Actions | None = None
    enabled: bool | None = None
    position: int | None = Field(default=None, ge=0, le=100000)


def catalog() -> dict[str, Any]:
    """The triggers, the records each brings (what conditions and actions may name), and
    the action types with their JSON schemas."""
    return {
        "data": [
            {"name": t.name, "description": t.doc, "records": list(records_of(t.name))}
            for t in TRIGGERS.values()
        ],
        "actions": {m.__name__: m.model_json_schema() for m in ACTION_MODELS},
    }


async def require(
    *, conn: Connection, organization_id: UUID, at_least: Literal["agent", "manager"]
) -> None:
    """Members and keys of the organization read; managers and write keys write. Else a
    404 (not the caller's organization) or a 403 naming what is missing."""
    row = await conn.fetchrow(
        "select $1 in (select app.org_ids()) as reads,"
        " $1 in (select app.org_ids_with_role('manager')) as writes",
        organization_id,
    )
    assert row is not None
    if not row["reads"]:
        raise NotFound("No such organization")
    if at_least == "manager" and not row["writes"]:
        role = await members.caller_role(conn=conn, organization_id=organization_id)
        if role is None:
            raise Forbidden("This API key is read-only", code="insufficient_scope")
        raise Forbidden(f"This needs the manager role or higher; you are {role}")


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


def _authored(row: Any) -> dict[str, Any]:
    """The new rule, unless it sends messages and has nobody to send them as (a key
    whose issuer has left): then a 422, and the caller's transaction saves nothing.
    (An existing rule whose author left can still be edited, to disable it.)"""
    assert row is not None
    saved = dict(row)
    if saved["created_by"] is None:
        for index, action in enumerate(saved["actions"]):
            if action.get("type") == "send_message":
                raise Unprocessable(
                    f"actions[{index}]: send_message sends as the rule's author, and this"
                    " API key's issuer is no longer a user; issue a new key",
                    details=[{"field": f"actions[{index}]", "message": "no author to send as"}],
                )
    return saved


async def create(
    *, db: Database, conn: Connection, organization_id: UUID, rule: RuleFields
) -> dict[str, Any]:
    org = organization_id
    await require(conn=conn, organization_id=org, at_least="manager")
    body = rule.model_dump(mode="json", exclude={"organization_id"})
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
    return _authored(row)


async def list_rules(*, conn: Connection, organization_id: UUID) -> list[dict[str, Any]]:
    await require(conn=conn, organization_id=organization_id, at_least="agent")
    rows = await conn.fetch(
        f"select {COLUMNS} from public.automation_rules where organization_id = $1"
        " order by position, created_at, id",
        organization_id,
    )
    return [dict(r) for r in rows]


async def get(
    *, conn: Connection, rule_id: UUID, organization_id: UUID | None = None
) -> dict[str, Any]:
    """One rule the caller can see (of `organization_id` when given: a key's)."""
    return await fetch_found(
        conn,
        "No such automation rule",
        f"select {COLUMNS} from public.automation_rules"
        " where id = $1 and ($2::uuid is null or organization_id = $2)",
        rule_id,
        organization_id,
    )


async def update(
    *,
    db: Database,
    conn: Connection,
    rule_id: UUID,
    change: RuleChange,
    organization_id: UUID | None = None,
) -> dict[str, Any]:
    current = await get(conn=conn, rule_id=rule_id, organization_id=organization_id)
    org = current["organization_id"]
    await require(conn=conn, organization_id=org, at_least="manager")
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


async def delete(*, conn: Connection, rule_id: UUID, organization_id: UUID | None = None) -> None:
    current = await get(conn=conn, rule_id=rule_id, organization_id=organization_id)
    org = current["organization_id"]
    await require(conn=conn, organization_id=org, at_least="manager")
    await conn.execute(
        "delete from public.automation_rules where organization_id = $1 and id = $2", org, rule_id
    )


async def reorder(
    *, conn: Connection, organization_id: UUID, rule_ids: list[UUID]
) -> list[dict[str, Any]]:
    """Sets the whole order at once: `rule_ids` must name each of the organization's rules
    exactly once (a rule made meanwhile is not silently put last). Their rows are locked
    first, so concurrent reorders apply one after the other."""
    await require(conn=conn, organization_id=organization_id, at_least="manager")
    rows = await conn.fetch(
        "select id from public.automation_rules where organization_id = $1 for update",
        organization_id,
    )
    have = {r["id"] for r in rows}
    counts = Counter(rule_ids)
    problems = [
        f"{what}: {', '.join(map(str, ids))}"
        for what, ids in (
            ("named more than once", [i for i, n in counts.items() if n > 1]),
            ("not rules of this organization", [i for i in counts if i not in have]),
            ("missing", sorted(have - counts.keys())),
        )
        if ids
    ]
    if problems:
        raise Unprocessable(
            "rule_ids: " + "; ".join(problems),
            details=[{"field": "rule_ids", "message": m} for m in problems],
        )
    await conn.execute(
        "update public.automation_rules r set position = o.position - 1"
        "  from unnest($2::uuid[]) with ordinality o(id, position)"
        " where r.organization_id = $1 and r.id = o.id and r.position <> o.position - 1",
        organization_id,
        rule_ids,
    )
    return await list_rules(conn=conn, organization_id=organization_id)


async def runs(
    *,
    conn: Connection,
    rule_id: UUID,
    before: int | None,
    limit: int,
    organization_id: UUID | None = None,
) -> list[dict[str, Any]]:
    rule = await get(conn=conn, rule_id=rule_id, organization_id=organization_id)
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
