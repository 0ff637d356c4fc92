"""/functions/v1/automation-rules — an organization's automation rules (members' tokens).

GET    /triggers                  the triggers, the records each brings, the action types
POST   /                          {organization_id, name, trigger, conditions?, actions,
                                   enabled?, position?}                       managers+
GET    /?organization_id=…        the rules in order                          any member
GET    /{id}                      one rule                                    any member
PATCH  /{id}                      {name?, trigger?, conditions?, actions?, enabled?,
                                   position?}                                 managers+
DELETE /{id}                                                                  managers+
PUT    /order                     {organization_id, rule_ids}: the whole order at once,
                                   each of the organization's rules once      managers+
POST   /{id}/dry-run              {record_id, entity?, payload?}: would it match, what
                                   would it do (payload: what the event carries beyond
                                   its record, e.g. the tag added); acts on nothing
                                                                              any member
GET    /{id}/runs                 its runs, newest first: matched or not, each action's
                                   outcome                                    any member

The public API serves the same rules to cg_ keys (/v1/automation-rules), through
the same domain code (shared/automation/rules.py). A rule is checked whole before
it is saved: an unknown trigger or action type, a condition the filter language
refuses, a user, tag, stage or webhook endpoint not of the organization, or a
custom field it does not have is a 422 naming it, and nothing is saved. The
events worker runs the rules (shared/automation/consumer.py).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response

from shared.automation import rules
from shared.automation.dry_run import DryRun, dry_run
from shared.web import CurrentUser, RuntimeDep, function_app

router = APIRouter()


class Order(rules.RuleOrder):
    organization_id: UUID


@router.get("/triggers")
async def triggers(user: CurrentUser) -> dict[str, Any]:
    return rules.catalog()


@router.post("/", status_code=201)
async def create(body: rules.RuleIn, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await rules.create(
            db=runtime.db, conn=conn, organization_id=body.organization_id, rule=body
        )


@router.get("/")
async def list_rules(
    organization_id: UUID, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return {"data": await rules.list_rules(conn=conn, organization_id=organization_id)}


@router.put("/order")
async def reorder(body: Order, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        found = await rules.reorder(
            conn=conn, organization_id=body.organization_id, rule_ids=body.rule_ids
        )
    return {"data": found}


@router.get("/{rule_id}")
async def get(rule_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await rules.get(conn=conn, rule_id=rule_id)


@router.patch("/{rule_id}")
async def update(
    rule_id: UUID, body: rules.RuleChange, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await rules.update(db=runtime.db, conn=conn, rule_id=rule_id, change=body)


@router.delete("/{rule_id}", status_code=204)
async def delete(rule_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> Response:
    async with runtime.db.user_tx(user) as conn:
        await rules.delete(conn=conn, rule_id=rule_id)
    return Response(status_code=204)


@router.post("/{rule_id}/dry-run")
async def try_rule(
    rule_id: UUID, body: DryRun, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await dry_run(conn=conn, rule_id=rule_id, trial=body)


@router.get("/{rule_id}/runs")
async def runs(
    rule_id: UUID,
    user: CurrentUser,
    runtime: RuntimeDep,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return {"data": await rules.runs(conn=conn, rule_id=rule_id, before=before, limit=limit)}


app = function_app(router, name="automation-rules")
