"""/functions/v1/bot-flows — an organization's bot flows (members' tokens).

POST   /                        {organization_id, name, graph, triggers?, timeout_seconds?,
                                 description?, enabled?}                       managers+
GET    /?organization_id=…      the flows, newest first                        any member
POST   /validate                {graph}: every problem, each with its node     any member
GET    /sessions?organization_id=…&flow_id&conversation_id&status&before
                                sessions, newest first                         any member
GET    /sessions/{id}           one session: status, node, variables           any member
GET    /sessions/{id}/steps     its log: node, input, output, variables changed, timing
GET    /{id}                    one flow with its draft                        any member
PATCH  /{id}                    {name?, graph?, triggers?, …}                  managers+
DELETE /{id}                                                                   managers+
POST   /{id}/publish            the draft as version N+1                       managers+
GET    /{id}/versions           its published versions                         any member
GET    /{id}/versions/{n}       one version's graph                            any member
POST   /{id}/simulate           {inputs, version?, conversation_id?, variables?, http?,
                                 call_http?}: transcript and final variables; sends
                                 nothing                                       any member
POST   /{id}/start              {conversation_id}: the published version in the
                                 conversation (409 when it has a live session) any member

A graph is checked whole before it is saved or published: an unknown node kind,
a dangling edge, an unreachable node, a cycle that waits for nobody, a variable read
before it is set or settings invalid for a kind is a 422 `invalid_flow` whose
details name each node and problem; a graph over the size limits is 422
`flow_too_large`. The runtime is shared/bots.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel

from shared.bots import flows, session_log
from shared.bots.simulate import SimulateIn
from shared.bots.validate import problems
from shared.web import CurrentUser, RuntimeDep, function_app

router = APIRouter()


class GraphIn(BaseModel):
    graph: dict[str, Any]


@router.post("/", status_code=201)
async def create(body: flows.FlowIn, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await flows.create(conn=conn, flow=body)


@router.get("/")
async def list_flows(
    organization_id: UUID, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return {"data": await flows.list_flows(conn=conn, organization_id=organization_id)}


@router.post("/validate")
async def validate(body: GraphIn, user: CurrentUser) -> dict[str, Any]:
    found = problems(body.graph)
    return {"valid": not found, "problems": found}


@router.get("/sessions")
async def sessions(
    organization_id: UUID,
    query: Annotated[session_log.SessionFilter, Query()],
    user: CurrentUser,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        data = await session_log.sessions(conn=conn, organization_id=organization_id, filter=query)
    return {"data": data}


@router.get("/sessions/{session_id}")
async def session(session_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await session_log.session(conn=conn, session_id=session_id)


@router.get("/sessions/{session_id}/steps")
async def steps(session_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return {"data": await session_log.steps(conn=conn, session_id=session_id)}


@router.get("/{flow_id}")
async def get(flow_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await flows.get(conn=conn, flow_id=flow_id)


@router.patch("/{flow_id}")
async def update(
    flow_id: UUID, body: flows.FlowChange, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await flows.update(conn=conn, flow_id=flow_id, change=body)


@router.delete("/{flow_id}", status_code=204)
async def delete(flow_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> Response:
    async with runtime.db.user_tx(user) as conn:
        await flows.delete(conn=conn, flow_id=flow_id)
    return Response(status_code=204)


@router.post("/{flow_id}/publish", status_code=201)
async def publish(
    flow_id: UUID, user: CurrentUser, runtime: RuntimeDep, body: flows.PublishIn | None = None
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await flows.publish(conn=conn, flow_id=flow_id, request=body)


@router.get("/{flow_id}/versions")
async def versions(flow_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return {"data": await flows.versions(conn=conn, flow_id=flow_id)}


@router.get("/{flow_id}/versions/{number}")
async def version(
    flow_id: UUID,
    number: Annotated[int, Path(ge=1, le=2**31 - 1)],
    user: CurrentUser,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await flows.version(conn=conn, flow_id=flow_id, number=number)


@router.post("/{flow_id}/simulate")
async def simulate(
    flow_id: UUID, body: SimulateIn, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await flows.simulate_flow(runtime, conn=conn, flow_id=flow_id, script=body)


@router.post("/{flow_id}/start", status_code=201)
async def start(
    flow_id: UUID, body: flows.StartIn, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await flows.start_in(
            runtime,
            conn=conn,
            flow_id=flow_id,
            conversation_id=body.conversation_id,
            by={"type": "api", "user_id": str(user.user_id)},
        )


app = function_app(router, name="bot-flows")
