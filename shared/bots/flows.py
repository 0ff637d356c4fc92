"""Saving, publishing and reading flows, inside the caller's RLS transaction.

Members (and read keys) read; managers (and write keys) write — the policies say
the same. A draft is checked whole before it is saved (shared.bots.validate.checked:
the graph, then what needs the organization); every problem is reported with its
node. Publishing snapshots the draft as version N+1 under the flow's row lock, so
two publishes never take one number. A flow can be simulated (its draft or a
version) or started in a conversation the caller can see; its sessions are read
through shared.bots.session_log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import Field

from shared.billing import require_feature
from shared.bots.gate import forget
from shared.bots.sessions import start
from shared.bots.simulate import SimulateIn, simulate
from shared.bots.triggers import Trigger, check_triggers
from shared.bots.validate import check, checked
from shared.crm.inputs import Strict
from shared.db import Connection, fetch_found
from shared.errors import Conflict, Forbidden, NotFound
from shared.runtime import Runtime

COLUMNS = (
    "id, organization_id, name, description, enabled, draft, triggers, timeout_seconds,"
    " published_version_id, published_version, created_by, created_at, updated_at"
)
VERSION_COLUMNS = "id, organization_id, flow_id, version, graph, published_by, created_at"
GRAPH_DOC = (
    "The flow's graph: {schema_version: 1, variables: {name: text|number|boolean|date},"
    " nodes: [{id, kind, …settings}], edges: [{from, to, port?}]}"
)


class StartIn(Strict):
    conversation_id: UUID


class FlowIn(Strict):
    organization_id: UUID
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    enabled: bool = True
    graph: dict[str, Any] = Field(description=GRAPH_DOC)
    triggers: list[Trigger] = Field(default_factory=list, max_length=20)
    timeout_seconds: int = Field(default=86400, ge=60, le=2592000)


class FlowChange(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    enabled: bool | None = None
    graph: dict[str, Any] | None = Field(default=None, description=GRAPH_DOC)
    triggers: list[Trigger] | None = Field(default=None, max_length=20)
    timeout_seconds: int | None = Field(default=None, ge=60, le=2592000)


async def create(*, conn: Connection, flow: FlowIn) -> dict[str, Any]:
    await require_feature(conn=conn, organization_id=flow.organization_id, feature="bots")
    await checked(conn, flow.organization_id, flow.graph)
    await check_triggers(conn, flow.organization_id, flow.triggers)
    row = await conn.fetchrow(
        f"""
        insert into public.bot_flows (organization_id, name, description, enabled, draft, triggers,
               timeout_seconds)
        values ($1, $2, $3, $4, $5, $6, $7) returning {COLUMNS}
        """,
        flow.organization_id,
        flow.name,
        flow.description,
        flow.enabled,
        flow.graph,
        [t.model_dump(mode="json") for t in flow.triggers],
        flow.timeout_seconds,
    )
    if row is None:  # the insert policy's refusal surfaces as an error; kept for mypy
        raise Forbidden("Managers create bot flows")
    return dict(row)


async def get(*, conn: Connection, flow_id: UUID) -> dict[str, Any]:
    return await fetch_found(
        conn, "No such bot flow", f"select {COLUMNS} from public.bot_flows where id = $1", flow_id
    )


async def list_flows(*, conn: Connection, organization_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"select {COLUMNS} from public.bot_flows where organization_id = $1"
        " order by created_at desc, id limit 500",
        organization_id,
    )
    return [dict(r) for r in rows]


async def _writable(conn: Connection, flow_id: UUID) -> dict[str, Any]:
    """The flow locked for writing; 403 for a member who may only read it."""
    row = await conn.fetchrow(
        f"select {COLUMNS} from public.bot_flows where id = $1 for update", flow_id
    )
    if row is None:
        await get(conn=conn, flow_id=flow_id)  # a 404 when it is not even readable
        raise Forbidden("Managers change bot flows")
    return dict(row)


async def update(*, conn: Connection, flow_id: UUID, change: FlowChange) -> dict[str, Any]:
    current = await _writable(conn, flow_id)
    given = change.model_dump(exclude_unset=True)
    org = current["organization_id"]
    if change.graph is not None:
        await checked(conn, org, change.graph)
    if change.triggers is not None:
        await check_triggers(conn, org, change.triggers)
    row = await conn.fetchrow(
        f"""
        update public.bot_flows
           set name = coalesce($2, name), description = case when $3 then $4 else description end,
               enabled = coalesce($5, enabled), draft = coalesce($6, draft),
               triggers = coalesce($7, triggers), timeout_seconds = coalesce($8, timeout_seconds)
         where id = $1 returning {COLUMNS}
        """,
        flow_id,
        change.name,
        "description" in given,
        change.description,
        change.enabled,
        change.graph,
        None if change.triggers is None else [t.model_dump(mode="json") for t in change.triggers],
        change.timeout_seconds,
    )
    assert row is not None
    forget(org)  # enabled or triggers may have changed (shared/bots/gate.py)
    return dict(row)


async def delete(*, conn: Connection, flow_id: UUID) -> None:
    await _writable(conn, flow_id)
    await conn.execute("delete from public.bot_flows where id = $1", flow_id)


class PublishIn(Strict):
    draft_updated_at: datetime | None = Field(
        default=None,
        description="The flow's updated_at as the builder loaded it: publishing fails with a"
        " 409 if the draft changed since",
    )


async def publish(
    *, conn: Connection, flow_id: UUID, request: PublishIn | None = None
) -> dict[str, Any]:
    """The draft, checked again (a row written past the function can hold anything), as
    the next version; the flow's triggers then start that version."""
    flow = await _writable(conn, flow_id)
    await require_feature(conn=conn, organization_id=flow["organization_id"], feature="bots")
    seen = request.draft_updated_at if request is not None else None
    if seen is not None and seen != flow["updated_at"]:
        raise Conflict("The draft changed since it was loaded", code="draft_changed")
    await checked(conn, flow["organization_id"], flow["draft"])
    version = await conn.fetchrow(
        f"""
        insert into public.bot_flow_versions (organization_id, flow_id, version, graph)
        select $1, $2, coalesce(max(version), 0) + 1, $3 from public.bot_flow_versions
         where flow_id = $2
        returning {VERSION_COLUMNS}
        """,
        flow["organization_id"],
        flow_id,
        flow["draft"],
    )
    assert version is not None
    await conn.execute(
        "update public.bot_flows set published_version_id = $2, published_version = $3 where id"
        " = $1",
        flow_id,
        version["id"],
        version["version"],
    )
    forget(flow["organization_id"])  # its triggers may start flows now (shared/bots/gate.py)
    return dict(version)


async def versions(*, conn: Connection, flow_id: UUID) -> list[dict[str, Any]]:
    await get(conn=conn, flow_id=flow_id)
    rows = await conn.fetch(
        f"select {VERSION_COLUMNS} from public.bot_flow_versions where flow_id = $1"
        " order by version desc limit 500",
        flow_id,
    )
    return [dict(r) for r in rows]


async def version(*, conn: Connection, flow_id: UUID, number: int) -> dict[str, Any]:
    return await fetch_found(
        conn,
        "No such version",
        f"select {VERSION_COLUMNS} from public.bot_flow_versions where flow_id = $1 and version"
        " = $2",
        flow_id,
        number,
    )


async def simulate_flow(
    runtime: Runtime, *, conn: Connection, flow_id: UUID, script: SimulateIn
) -> dict[str, Any]:
    """The draft (checked) or a published version, run against the script."""
    flow = await get(conn=conn, flow_id=flow_id)
    org = flow["organization_id"]
    if script.version is None:
        graph = await checked(conn, org, flow["draft"])
    else:
        raw = (await version(conn=conn, flow_id=flow_id, number=script.version))["graph"]
        graph = check(raw)
    return await simulate(runtime, conn=conn, organization_id=org, graph=graph, script=script)


async def start_in(
    runtime: Runtime, *, conn: Connection, flow_id: UUID, conversation_id: UUID, by: dict[str, Any]
) -> dict[str, Any]:
    """Starts the flow in a conversation the caller can see (`conn` is the caller's)."""
    flow = await get(conn=conn, flow_id=flow_id)
    await require_feature(conn=conn, organization_id=flow["organization_id"], feature="bots")
    visible = await conn.fetchval(
        "select exists (select 1 from public.conversations where id = $1 and organization_id = $2)",
        conversation_id,
        flow["organization_id"],
    )
    if not visible:
        raise NotFound("No such conversation")
    session = await start(
        runtime,
        organization_id=flow["organization_id"],
        flow_id=flow_id,
        conversation_id=conversation_id,
        started_by=by,
    )
    return dict(session)
