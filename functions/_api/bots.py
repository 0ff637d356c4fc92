"""/v1/bot-flows and /v1/bot-sessions — chatbot flows, their versions and sessions.

Any key reads; write keys (which act as managers) create, change, publish and
delete flows and start a flow in a conversation. A graph is checked whole before it
is saved: an invalid one is a 422 whose details name each node and problem
(`invalid_flow`; `flow_too_large` past the size limits). Simulating sends nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from functions._api.billing import requires
from functions._api.common import READ, READ_ONE, WRITE, ReadKey, WriteKey, in_tx
from shared.bots import flows, session_log
from shared.bots.simulate import SimulateIn
from shared.bots.triggers import Trigger
from shared.web import RuntimeDep

router = APIRouter(tags=["bot-flows"], dependencies=[requires("bots")])


class BotFlow(BaseModel):
    id: UUID
    organization_id: UUID
    name: str
    description: str | None
    enabled: bool
    draft: dict[str, Any]
    triggers: list[dict[str, Any]]
    timeout_seconds: int
    published_version_id: UUID | None
    published_version: int | None
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


class BotFlowVersion(BaseModel):
    id: UUID
    organization_id: UUID
    flow_id: UUID
    version: int
    graph: dict[str, Any]
    published_by: UUID | None
    created_at: datetime


class BotSession(BaseModel):
    id: UUID
    organization_id: UUID
    flow_id: UUID
    flow_version_id: UUID
    conversation_id: UUID
    contact_id: UUID | None
    status: session_log.SessionStatus
    current_node: str | None
    variables: dict[str, Any]
    retries: int
    resume_at: datetime | None
    timeout_seconds: int
    last_activity_at: datetime
    expires_at: datetime | None
    started_by: dict[str, Any]
    started_at: datetime
    ended_at: datetime | None
    end_reason: str | None


class BotStep(BaseModel):
    id: int
    session_id: UUID
    node_id: str
    kind: str
    input: Any
    output: Any
    variables_changed: dict[str, Any]
    error: str | None
    started_at: datetime
    duration_ms: int


class Simulation(BaseModel):
    status: str
    current_node: str | None
    end_reason: str | None
    variables: dict[str, Any]
    transcript: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    unused_inputs: int


class FlowCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    enabled: bool = True
    graph: dict[str, Any] = Field(description=flows.GRAPH_DOC)
    triggers: list[Trigger] = Field(default_factory=list, max_length=20)
    timeout_seconds: int = Field(default=86400, ge=60, le=2592000)


FlowId = Annotated[UUID, Path()]


@router.get("/bot-flows", response_model=list[BotFlow], responses=READ, summary="List bot flows")
async def list_flows(key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime, key, lambda conn: flows.list_flows(conn=conn, organization_id=key.organization_id)
    )


@router.post(
    "/bot-flows",
    status_code=201,
    response_model=BotFlow,
    responses=WRITE,
    summary="Create a bot flow",
)
async def create_flow(body: FlowCreate, key: WriteKey, runtime: RuntimeDep) -> Any:
    flow = flows.FlowIn(organization_id=key.organization_id, **body.model_dump())
    return await in_tx(runtime, key, lambda conn: flows.create(conn=conn, flow=flow))


@router.get(
    "/bot-flows/{flow_id}", response_model=BotFlow, responses=READ_ONE, summary="Get a bot flow"
)
async def get_flow(flow_id: FlowId, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(runtime, key, lambda conn: flows.get(conn=conn, flow_id=flow_id))


@router.patch(
    "/bot-flows/{flow_id}",
    response_model=BotFlow,
    responses=WRITE,
    summary="Change a bot flow's draft",
)
async def update_flow(
    flow_id: FlowId, body: flows.FlowChange, key: WriteKey, runtime: RuntimeDep
) -> Any:
    return await in_tx(
        runtime, key, lambda conn: flows.update(conn=conn, flow_id=flow_id, change=body)
    )


@router.delete(
    "/bot-flows/{flow_id}", status_code=204, responses=WRITE, summary="Delete a bot flow"
)
async def delete_flow(flow_id: FlowId, key: WriteKey, runtime: RuntimeDep) -> Response:
    await in_tx(runtime, key, lambda conn: flows.delete(conn=conn, flow_id=flow_id))
    return Response(status_code=204)


@router.post(
    "/bot-flows/{flow_id}/publish",
    status_code=201,
    response_model=BotFlowVersion,
    responses=WRITE,
    summary="Publish the draft as the next version",
)
async def publish(
    flow_id: FlowId, key: WriteKey, runtime: RuntimeDep, body: flows.PublishIn | None = None
) -> Any:
    return await in_tx(
        runtime, key, lambda conn: flows.publish(conn=conn, flow_id=flow_id, request=body)
    )


@router.get(
    "/bot-flows/{flow_id}/versions",
    response_model=list[BotFlowVersion],
    responses=READ_ONE,
    summary="A bot flow's published versions, newest first",
)
async def versions(flow_id: FlowId, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(runtime, key, lambda conn: flows.versions(conn=conn, flow_id=flow_id))


@router.post(
    "/bot-flows/{flow_id}/simulate",
    response_model=Simulation,
    responses=READ_ONE,
    summary="Run the draft or a version against scripted inputs; sends nothing",
)
async def simulate(flow_id: FlowId, body: SimulateIn, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: flows.simulate_flow(runtime, conn=conn, flow_id=flow_id, script=body),
    )


@router.post(
    "/bot-flows/{flow_id}/start",
    status_code=201,
    response_model=BotSession,
    responses=WRITE,
    summary="Start the published version in a conversation (409 if one is live there)",
)
async def start(flow_id: FlowId, body: flows.StartIn, key: WriteKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: flows.start_in(
            runtime,
            conn=conn,
            flow_id=flow_id,
            conversation_id=body.conversation_id,
            by={"type": "api", "api_key_id": str(key.key_id)},
        ),
    )


@router.get(
    "/bot-sessions", response_model=list[BotSession], responses=READ, summary="List bot sessions"
)
async def list_sessions(
    key: ReadKey, runtime: RuntimeDep, query: Annotated[session_log.SessionFilter, Query()]
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: session_log.sessions(
            conn=conn, organization_id=key.organization_id, filter=query
        ),
    )


@router.get(
    "/bot-sessions/{session_id}",
    response_model=BotSession,
    responses=READ_ONE,
    summary="Get a bot session",
)
async def get_session(session_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime, key, lambda conn: session_log.session(conn=conn, session_id=session_id)
    )


@router.get(
    "/bot-sessions/{session_id}/steps",
    response_model=list[BotStep],
    responses=READ_ONE,
    summary="A session's log: each node run, its input, output and timing",
)
async def steps(session_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime, key, lambda conn: session_log.steps(conn=conn, session_id=session_id)
    )
