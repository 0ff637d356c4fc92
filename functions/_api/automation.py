"""/v1/automation-rules — the organization's automation rules, in order.

Any key reads them, their runs and dry runs; write keys (which act as managers)
create, change, delete and reorder them. The same domain code serves the
automation-rules function (shared/automation/rules.py): a rule is checked whole
before it is saved, and a 422 names the problem (an unknown trigger or action, a
condition the filter language refuses, a tag, stage, member or endpoint not of
the organization). Messages a rule sends go out as the member who issued the key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from functions._api.common import (
    READ,
    READ_ONE,
    WRITE,
    IdempotencyKey,
    ReadKey,
    WriteKey,
    idempotent,
    in_tx,
)
from shared.automation import rules
from shared.automation.dry_run import DryRun, dry_run
from shared.web import RuntimeDep

router = APIRouter(prefix="/automation-rules", tags=["automation rules"])


class AutomationRule(BaseModel):
    id: UUID
    organization_id: UUID
    name: str
    position: int
    enabled: bool
    trigger: str
    conditions: dict[str, Any]
    actions: list[dict[str, Any]]
    created_by: UUID | None = Field(description="Whom the rule's messages are sent as")
    created_at: datetime
    updated_at: datetime


class AutomationRuleList(BaseModel):
    data: list[AutomationRule]


class Trigger(BaseModel):
    name: str
    description: str
    records: list[str]


class Catalog(BaseModel):
    data: list[Trigger]
    actions: dict[str, dict[str, Any]] = Field(description="Each action type's JSON schema")


class DryRunResult(BaseModel):
    rule_id: UUID
    records: dict[str, UUID]
    conditions: dict[str, bool] = Field(description="Whether each record's condition holds")
    matched: bool
    actions: list[dict[str, Any]] = Field(description="What it would do, to which record")


class AutomationRun(BaseModel):
    id: int
    rule_id: UUID
    event_id: int
    event_type: str
    record_id: UUID | None
    status: Literal["ran", "not_matched", "skipped"]
    matched: bool
    actions: list[dict[str, Any]] = Field(description="Each action with its outcome")
    reason: str | None
    depth: int
    created_at: datetime


class AutomationRunList(BaseModel):
    data: list[AutomationRun]


@router.get("/triggers", response_model=Catalog, responses=READ, summary="Triggers and actions")
async def automation_catalog(key: ReadKey) -> Any:
    return rules.catalog()


@router.get("", response_model=AutomationRuleList, responses=READ, summary="List automation rules")
async def list_automation_rules(key: ReadKey, runtime: RuntimeDep) -> Any:
    org = key.organization_id
    found = await in_tx(runtime, key, lambda conn: rules.list_rules(conn=conn, organization_id=org))
    return {"data": found}


@router.post(
    "",
    status_code=201,
    response_model=AutomationRule,
    responses=WRITE,
    summary="Create an automation rule",
    description="Last in the order unless `position` is given.",
)
async def create_automation_rule(
    body: rules.RuleFields,
    key: WriteKey,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await idempotent(
        runtime,
        key,
        scope="automation-rules.create",
        idempotency_key=idempotency_key,
        request=body.model_dump(mode="json"),
        model=AutomationRule,
        work=lambda conn: rules.create(
            db=runtime.db, conn=conn, organization_id=key.organization_id, rule=body
        ),
    )


@router.put(
    "/order",
    response_model=AutomationRuleList,
    responses=WRITE,
    summary="Set the rules' order",
    description="Every rule of the organization, once, first to last; all or nothing. An id"
    " that is not one of the organization's rules, one named twice or one left out is a 422"
    " naming it.",
)
async def reorder_automation_rules(
    body: rules.RuleOrder, key: WriteKey, runtime: RuntimeDep
) -> Any:
    org = key.organization_id
    found = await in_tx(
        runtime,
        key,
        lambda conn: rules.reorder(conn=conn, organization_id=org, rule_ids=body.rule_ids),
    )
    return {"data": found}


@router.get("/{rule_id}", response_model=AutomationRule, responses=READ_ONE, summary="Get a rule")
async def get_automation_rule(rule_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    org = key.organization_id
    return await in_tx(
        runtime, key, lambda conn: rules.get(conn=conn, rule_id=rule_id, organization_id=org)
    )


@router.patch(
    "/{rule_id}",
    response_model=AutomationRule,
    responses=WRITE,
    summary="Change a rule",
    description="The fields given replace the stored ones; the rule is checked whole again.",
)
async def update_automation_rule(
    rule_id: UUID, body: rules.RuleChange, key: WriteKey, runtime: RuntimeDep
) -> Any:
    org = key.organization_id
    return await in_tx(
        runtime,
        key,
        lambda conn: rules.update(
            db=runtime.db, conn=conn, rule_id=rule_id, change=body, organization_id=org
        ),
    )


@router.delete("/{rule_id}", status_code=204, responses=WRITE, summary="Delete a rule")
async def delete_automation_rule(rule_id: UUID, key: WriteKey, runtime: RuntimeDep) -> Response:
    org = key.organization_id
    await in_tx(
        runtime, key, lambda conn: rules.delete(conn=conn, rule_id=rule_id, organization_id=org)
    )
    return Response(status_code=204)


@router.post(
    "/{rule_id}/dry-run",
    response_model=DryRunResult,
    responses=READ_ONE,
    summary="Try a rule on a record",
    description="Whether the rule's conditions hold for the record and what its actions"
    " would do; acts on nothing. `payload` gives what the event carries beyond its record"
    " (the tag added, for a *.tag_added rule).",
)
async def dry_run_automation_rule(
    rule_id: UUID, body: DryRun, key: ReadKey, runtime: RuntimeDep
) -> Any:
    org = key.organization_id
    return await in_tx(
        runtime,
        key,
        lambda conn: dry_run(conn=conn, rule_id=rule_id, trial=body, organization_id=org),
    )


@router.get(
    "/{rule_id}/runs",
    response_model=AutomationRunList,
    responses=READ_ONE,
    summary="A rule's runs, newest first",
)
async def automation_rule_runs(
    rule_id: UUID,
    key: ReadKey,
    runtime: RuntimeDep,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="Runs before this id")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    org = key.organization_id
    found = await in_tx(
        runtime,
        key,
        lambda conn: rules.runs(
            conn=conn, rule_id=rule_id, before=before, limit=limit, organization_id=org
        ),
    )
    return {"data": found}
