"""The builder's "test" button: a flow run against scripted customer inputs.

Nothing is sent, written or assigned: messages go to the transcript, contact
fields, tags and handoffs are reported as what would happen. Conditions run as
they do live (as SQL, under the caller's RLS; contact and conversation filters
need a `conversation_id`, else they are false and the transcript says so). HTTP
nodes answer from the script (`http`: node id → a response, or a list of them in
call order) and call out only when `call_http` is set. Delays pass at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from shared.bots.conditions import holds
from shared.bots.engine import Engine, HttpAnswer, Inbound, Outgoing, State, Step
from shared.bots.graph import Graph
from shared.bots.host import CONVERSATION, builtins, call
from shared.bots.nodes import Condition, Handoff, Http, Tag
from shared.bots.variables import BUILTINS
from shared.db import Connection
from shared.errors import NotFound
from shared.runtime import Runtime


class ScriptedInput(BaseModel):
    text: str | None = Field(default=None, max_length=4096)
    reply_id: str | None = Field(default=None, max_length=256)


class MockResponse(BaseModel):
    status: int = Field(default=200, ge=100, le=599)
    body: Any = None
    error: str | None = Field(default=None, max_length=500, description="e.g. a timeout")


class SimulateIn(BaseModel):
    inputs: list[ScriptedInput] = Field(default_factory=list, max_length=100)
    version: int | None = Field(default=None, ge=1, description="Default: the draft")
    conversation_id: UUID | None = None
    variables: dict[str, Any] = Field(default_factory=dict, max_length=50)
    http: dict[str, MockResponse | list[MockResponse]] = Field(default_factory=dict, max_length=50)
    call_http: bool = False


@dataclass
class SimHost:
    runtime: Runtime
    conn: Connection
    graph: Graph
    script: SimulateIn
    conversation: Any
    transcript: list[dict[str, Any]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)

    async def send(self, node_id: str, message: Outgoing) -> Any:
        line = {"from": "bot", "node": node_id, "text": message.text}
        for key in ("buttons", "list_options", "media_url", "media_type"):
            if getattr(message, key):
                line[key] = getattr(message, key)
        self.transcript.append(line)
        return {"simulated": True}

    async def condition(self, node: Condition, variables: dict[str, Any]) -> bool:
        records = {}
        if self.conversation is not None:
            records = {
                "conversation": self.conversation["id"],
                "contact": self.conversation["contact_id"],
            }
        elif node.contact or node.conversation:
            self.transcript.append(
                {
                    "from": "system",
                    "node": node.id,
                    "text": "no conversation_id: contact and conversation filters are false",
                }
            )
            return False
        return await holds(
            conn=self.conn,
            organization_id=self.conversation["organization_id"]
            if self.conversation
            else UUID(int=0),
            contact=node.contact,
            conversation=node.conversation,
            variables_filter=node.variables,
            types=self.graph.variable_types(),
            variables=variables,
            records=records,
        )

    async def set_contact_field(self, key: str, value: Any) -> Any:
        return {"would_set_contact_field": key, "value": value}

    async def tag(self, node: Tag) -> Any:
        return {"would": f"{node.action} tag {node.tag!r} on the {node.target}"}

    async def http(self, node: Http, url: str, body: Any, step: int) -> HttpAnswer:
        index = self.calls.get(node.id, 0)
        self.calls[node.id] = index + 1
        mocked = self.script.http.get(node.id)
        if isinstance(mocked, list):
            mocked = mocked[index] if index < len(mocked) else None
        if mocked is not None:
            return HttpAnswer(None if mocked.error else mocked.status, mocked.body, mocked.error)
        if self.script.call_http:
            return await call(self.runtime, node, url, body, keys=[], msg_id=f"msg_bot_sim_{step}")
        return HttpAnswer(None, error="not called in a simulation: mock it in `http`")

    async def handoff(self, node: Handoff) -> Any:
        return {"would_hand_off": node.method, "user_id": node.user_id}


def _step(step: Step) -> dict[str, Any]:
    return {
        "node_id": step.node_id,
        "kind": step.kind,
        "input": step.input,
        "output": step.output,
        "variables_changed": step.variables_changed,
        "error": step.error,
    }


async def simulate(
    runtime: Runtime, *, conn: Connection, organization_id: UUID, graph: Graph, script: SimulateIn
) -> dict[str, Any]:
    conversation = None
    variables: dict[str, Any] = dict.fromkeys(BUILTINS)
    if script.conversation_id is not None:
        conversation = await conn.fetchrow(CONVERSATION, organization_id, script.conversation_id)
        if conversation is None:
            raise NotFound("No such conversation")
        variables = builtins(conversation)
    variables.update(script.variables)
    host = SimHost(runtime, conn, graph, script, conversation)
    engine = Engine(graph, host)
    state = State(node=None, variables=variables)
    steps = await engine.begin(state)
    steps += await _waits(engine, state)
    unused = 0
    for item in script.inputs:
        if not state.live:
            unused += 1
            continue
        host.transcript.append({"from": "customer", "text": item.text, "reply_id": item.reply_id})
        steps += await engine.answer(state, Inbound(item.text, item.reply_id))
        steps += await _waits(engine, state)
    return {
        "status": state.status,
        "current_node": state.node,
        "end_reason": state.end_reason,
        "variables": state.variables,
        "transcript": host.transcript,
        "steps": [_step(s) for s in steps],
        "unused_inputs": unused,
    }


async def _waits(engine: Engine, state: State) -> list[Step]:
    """Delays pass at once in a simulation (a bounded number of them)."""
    steps: list[Step] = []
    for _ in range(50):
        if state.status != "waiting" or state.resume_at is None:
            break
        steps += await engine.resume(state, state.resume_at + timedelta(seconds=1))
    return steps
