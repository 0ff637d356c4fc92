"""The interpreter: a session advanced from its current node until it waits or ends.

The engine knows the graph and the session's state; everything that touches the
world (sending, conditions run as SQL, the contact, tags, HTTP, assignment) is a
`Host`: the live runtime's host writes and sends, the simulator's records. Each
node run is one `Step` for the log.

    waiting on ask   an inbound answer is checked: valid → the variable, `next`;
                     invalid → the retry prompt, or past the retry limit `failed`
    waiting on wait  only the clock resumes it (`resume`), through `next`
    a port without an edge ends the session: completed (http `failure`: failed)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

from shared.bots.answers import accept
from shared.bots.graph import Graph
from shared.bots.nodes import (
    Ask,
    Condition,
    End,
    Handoff,
    Http,
    SendMessage,
    Settings,
    SetVariable,
    Start,
    Tag,
    Wait,
)
from shared.bots.variables import interpolate
from shared.errors import AppError

MAX_STEPS = 200  # per advance; cycles always wait, so this is a guard, not a limit


@dataclass
class State:
    node: str | None
    variables: dict[str, Any]
    status: str = "active"  # active | waiting | handed_off | completed | failed | timed_out
    retries: int = 0
    resume_at: datetime | None = None
    end_reason: str | None = None

    @property
    def live(self) -> bool:
        return self.status in ("active", "waiting")


@dataclass
class Inbound:
    """A customer's message as the flow reads it."""

    text: str | None
    reply_id: str | None = None  # a tapped button's or list row's id
    message_id: str | None = None


@dataclass
class Step:
    node_id: str
    kind: str
    input: Any = None
    output: Any = None
    variables_changed: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    duration_ms: int = 0


@dataclass
class HttpAnswer:
    status: int | None
    body: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


@dataclass
class Outgoing:
    """A message the bot sends: text, options (buttons or a list), media."""

    text: str | None
    buttons: list[dict[str, str]] | None = None
    list_options: list[dict[str, Any]] | None = None
    list_button: str | None = None
    media_url: str | None = None
    media_type: str | None = None


class Stop(AppError):
    """The session cannot go on (the contact opted out, the window closed …)."""

    code = "bot_stopped"


class Host(Protocol):
    async def send(self, node_id: str, message: Outgoing) -> Any: ...
    async def condition(self, node: Condition, variables: dict[str, Any]) -> bool: ...
    async def set_contact_field(self, key: str, value: Any) -> Any: ...
    async def tag(self, node: Tag) -> Any: ...
    async def http(self, node: Http, url: str, body: Any, step: int) -> HttpAnswer: ...
    async def handoff(self, node: Handoff) -> Any: ...


def _options(node: SendMessage | Ask) -> Outgoing:
    if isinstance(node, Ask):
        options = [o.model_dump(exclude_none=True) for o in node.options or []]
        small = len(options) <= 3 and all(len(o["title"]) <= 20 for o in options)
        return Outgoing(
            text=node.text,
            buttons=options if options and small else None,
            list_options=options if options and not small else None,
            list_button="Choose" if options and not small else None,
        )
    return Outgoing(
        text=node.text,
        buttons=[o.model_dump(exclude_none=True) for o in node.buttons] if node.buttons else None,
        list_options=[o.model_dump(exclude_none=True) for o in node.list_options]
        if node.list_options
        else None,
        list_button=node.list_button if node.list_options else None,
        media_url=str(node.media.url) if node.media else None,
        media_type=node.media.type if node.media else None,
    )


def _filled(message: Outgoing, variables: dict[str, Any]) -> Outgoing:
    if message.text is not None:
        message.text = interpolate(message.text, variables)
    return message


def _fill(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return interpolate(value, variables)
    if isinstance(value, dict):
        return {k: _fill(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, variables) for v in value]
    return value


def _dig(body: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(body, dict):
            body = body.get(part)
        elif isinstance(body, list) and part.isdigit() and int(part) < len(body):
            body = body[int(part)]
        else:
            return None
    return body


def _typed(value: Any, kind: str) -> Any:
    if kind == "number" and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    return value


class Engine:
    def __init__(self, graph: Graph, host: Host) -> None:
        self.graph = graph
        self.host = host

    async def begin(self, state: State) -> list[Step]:
        state.node = self.graph.start()
        return await self.run(state)

    async def answer(self, state: State, inbound: Inbound) -> list[Step]:
        """An inbound message for the session; [] when it waits for the clock only."""
        node = self.graph.nodes.get(state.node or "")
        if state.status != "waiting" or not isinstance(node, Ask):
            return []
        started = time.monotonic()
        step = Step(node.id, node.kind, input={"text": inbound.text, "reply_id": inbound.reply_id})
        value = accept(node, inbound.text, inbound.reply_id)
        steps = [step]
        if value is not None:
            state.variables[node.variable] = value
            step.variables_changed = {node.variable: value}
            step.output = {"valid": True}
            self._move(state, node.id, "next")
        elif state.retries < node.max_retries:
            state.retries += 1
            step.output = {"valid": False, "retry": state.retries}
            await self.host.send(
                node.id, Outgoing(text=interpolate(node.retry_prompt, state.variables))
            )
            step.duration_ms = int((time.monotonic() - started) * 1000)
            return steps
        else:
            step.output = {"valid": False, "retries_exhausted": True}
            self._move(state, node.id, "failed", reason="no valid answer to the question")
        step.duration_ms = int((time.monotonic() - started) * 1000)
        if state.status == "active":
            steps += await self.run(state)
        return steps

    async def resume(self, state: State, now: datetime) -> list[Step]:
        """The clock: a delay that has run out goes on."""
        node = self.graph.nodes.get(state.node or "")
        if state.status != "waiting" or not isinstance(node, Wait):
            return []
        if state.resume_at is not None and state.resume_at > now:
            return []
        step = Step(node.id, node.kind, output={"resumed": True})
        self._move(state, node.id, "next")
        return [step, *(await self.run(state))] if state.status == "active" else [step]

    def _move(self, state: State, node_id: str, port: str, *, reason: str | None = None) -> None:
        target = self.graph.next_of(node_id, port)
        state.retries = 0
        state.resume_at = None
        if target is None:
            state.node = node_id
            state.status = "failed" if port == "failure" else "completed"
            state.end_reason = reason or ("the HTTP request failed" if port == "failure" else None)
        else:
            state.node = target
            state.status = "active"

    async def run(self, state: State) -> list[Step]:
        steps: list[Step] = []
        while state.status == "active" and state.node is not None:
            if len(steps) >= MAX_STEPS:
                state.status, state.end_reason = "failed", f"more than {MAX_STEPS} steps at once"
                break
            node = self.graph.nodes[state.node]
            started = time.monotonic()
            step = Step(node.id, node.kind)
            steps.append(step)
            try:
                await self._node(node, state, step, len(steps))
            except Stop as exc:
                step.error = exc.message
                state.status, state.end_reason = "failed", exc.message
            step.duration_ms = int((time.monotonic() - started) * 1000)
        return steps

    async def _node(self, node: Settings, state: State, step: Step, index: int) -> None:
        host, variables = self.host, state.variables
        if isinstance(node, Start):
            self._move(state, node.id, "next")
        elif isinstance(node, SendMessage):
            step.output = await host.send(node.id, _filled(_options(node), variables))
            self._move(state, node.id, "next")
        elif isinstance(node, Ask):
            step.output = await host.send(node.id, _filled(_options(node), variables))
            state.status, state.retries = "waiting", 0
        elif isinstance(node, Condition):
            held = await host.condition(node, variables)
            step.output = {"result": held}
            self._move(state, node.id, "true" if held else "false")
        elif isinstance(node, SetVariable):
            value = _fill(node.value, variables)
            if node.variable:
                value = _typed(value, self.graph.variable_types().get(node.variable, "text"))
                variables[node.variable] = value
                step.variables_changed = {node.variable: value}
            if node.contact_field:
                step.output = await host.set_contact_field(node.contact_field, value)
            self._move(state, node.id, "next")
        elif isinstance(node, Tag):
            step.output = await host.tag(node)
            self._move(state, node.id, "next")
        elif isinstance(node, Http):
            await self._http(node, state, step, index)
        elif isinstance(node, Wait):
            state.status = "waiting"
            state.resume_at = datetime.now(UTC) + timedelta(seconds=node.seconds)
            step.output = {"resume_at": state.resume_at.isoformat()}
        elif isinstance(node, Handoff):
            if node.text:
                await host.send(node.id, Outgoing(text=interpolate(node.text, variables)))
            step.output = await host.handoff(node)
            state.status, state.end_reason = "handed_off", "handoff node"
        else:
            assert isinstance(node, End)
            state.status = "completed"

    async def _http(self, node: Http, state: State, step: Step, index: int) -> None:
        variables = state.variables
        url = interpolate(node.url, variables, lambda v: quote(v, safe=""))
        body = _fill(node.body, variables)
        step.input = {"method": node.method, "url": url, "body": body}
        answer = await self.host.http(node, url, body, index)
        step.output = {"status": answer.status, "error": answer.error}
        changed: dict[str, Any] = {}
        if node.status_variable:
            changed[node.status_variable] = answer.status or 0
        if answer.ok:
            for name, path in node.save.items():
                changed[name] = _typed(_dig(answer.body, path), self.graph.variable_types()[name])
        else:
            step.error = answer.error or f"HTTP {answer.status}"
        variables.update(changed)
        step.variables_changed = changed
        self._move(state, node.id, "success" if answer.ok else "failure")
