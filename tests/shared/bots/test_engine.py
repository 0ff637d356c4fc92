"""The interpreter over a recording host: no database, no network."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.bots.engine import Engine, HttpAnswer, Inbound, Outgoing, State, Stop
from shared.bots.nodes import Condition, Handoff, Http, Tag
from shared.bots.validate import check
from tests.shared.bots.flows import chain, lead_flow, node


class Recorder:
    def __init__(self, http: HttpAnswer | None = None, refuse: bool = False) -> None:
        self.sent: list[Outgoing] = []
        self.http_answer = http or HttpAnswer(200, {"lead": {"score": "7"}})
        self.calls: list[tuple[str, Any]] = []
        self.refuse = refuse

    async def send(self, node_id: str, message: Outgoing) -> Any:
        if self.refuse:
            raise Stop("The contact opted out")
        self.sent.append(message)
        return {"sent": True}

    async def condition(self, node: Condition, variables: dict[str, Any]) -> bool:
        return variables.get("plan") == "premium"

    async def set_contact_field(self, key: str, value: Any) -> Any:
        self.calls.append(("field", (key, value)))

    async def tag(self, node: Tag) -> Any:
        self.calls.append(("tag", node.tag))

    async def http(self, node: Http, url: str, body: Any, step: int) -> HttpAnswer:
        self.calls.append(("http", body))
        return self.http_answer

    async def handoff(self, node: Handoff) -> Any:
        self.calls.append(("handoff", node.method))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def fresh() -> State:
    return State(node=None, variables={"contact_name": "Ann"})


def test_a_whole_conversation() -> None:
    host = Recorder()
    engine = Engine(check(lead_flow()), host)
    state = fresh()
    steps = run(engine.begin(state))
    assert [s.node_id for s in steps] == ["start", "hello", "ask_email"]
    assert state.status == "waiting" and state.node == "ask_email"
    assert [m.text for m in host.sent] == ["Hi Ann!", "Your e-mail?"]
    run(engine.answer(state, Inbound("not mail")))
    assert host.sent[-1].text == "That is not an e-mail address." and state.retries == 1
    run(engine.answer(state, Inbound("ann@example.com")))
    assert state.node == "ask_plan" and state.variables["email"] == "ann@example.com"
    assert host.sent[-1].buttons == [
        {"id": "basic", "title": "Basic"},
        {"id": "premium", "title": "Premium"},
    ]
    steps = run(engine.answer(state, Inbound("x", reply_id="premium")))
    assert [s.node_id for s in steps] == ["ask_plan", "is_premium", "lookup", "thanks", "human"]
    assert steps[2].variables_changed == {"lookup_status": 200, "score": 7}
    assert host.calls[0] == ("http", {"email": "ann@example.com"})
    assert host.sent[-2].text == "Thanks, ann@example.com (score 7)."
    assert state.status == "handed_off"


def test_retries_run_out_into_the_failed_port() -> None:
    host = Recorder()
    engine = Engine(check(lead_flow()), host)
    state = fresh()
    run(engine.begin(state))
    run(engine.answer(state, Inbound("no")))
    steps = run(engine.answer(state, Inbound("still no")))
    assert [s.node_id for s in steps] == ["ask_email", "sorry", "end"]
    assert state.status == "completed"


def test_http_failure_takes_the_failure_port_and_maps_nothing() -> None:
    host = Recorder(http=HttpAnswer(None, error="no answer within 5 s"))
    engine = Engine(check(lead_flow()), host)
    state = fresh()
    run(engine.begin(state))
    run(engine.answer(state, Inbound("a@b.co")))
    steps = run(engine.answer(state, Inbound("premium")))
    assert [s.node_id for s in steps][-2:] == ["lookup", "human"]
    assert steps[2].error == "no answer within 5 s" and "score" not in state.variables


def test_a_failure_port_without_an_edge_fails_the_session() -> None:
    flow = chain(node("h", "http", url="https://x.example.com"), node("e", "end"))
    flow["edges"][-1]["port"] = "success"
    state = fresh()
    run(Engine(check(flow), Recorder(http=HttpAnswer(500))).begin(state))
    assert state.status == "failed" and state.end_reason == "the HTTP request failed"


def test_a_wait_resumes_on_the_clock_only() -> None:
    flow = chain(node("w", "wait", seconds=60), node("say", "send_message", text="later"))
    host = Recorder()
    engine = Engine(check(flow), host)
    state = fresh()
    run(engine.begin(state))
    assert state.status == "waiting" and state.resume_at is not None
    assert run(engine.answer(state, Inbound("hello?"))) == []
    assert run(engine.resume(state, datetime.now(UTC))) == []
    steps = run(engine.resume(state, datetime.now(UTC) + timedelta(seconds=61)))
    assert [s.node_id for s in steps] == ["w", "say"] and state.status == "completed"


def test_set_variable_typed_and_contact_field() -> None:
    flow = chain(
        node(
            "set", "set_variable", variable="n", contact_field="score", value="{{ contact_name }}"
        ),
        node("num", "set_variable", variable="m", value="12"),
        n="text",
        m="number",
    )
    host = Recorder()
    state = fresh()
    run(Engine(check(flow), host).begin(state))
    assert state.variables["n"] == "Ann" and state.variables["m"] == 12
    assert host.calls == [("field", ("score", "Ann"))]


def test_a_refused_send_fails_the_session_with_the_reason() -> None:
    state = fresh()
    steps = run(
        Engine(check(chain(node("say", "send_message", text="hi"))), Recorder(refuse=True)).begin(
            state
        )
    )
    assert state.status == "failed" and steps[-1].error == "The contact opted out"


def test_a_list_for_many_options() -> None:
    options = [{"id": f"o{i}", "title": f"Option {i}"} for i in range(5)]
    host = Recorder()
    state = fresh()
    flow = chain(
        node("q", "ask", type="choice", variable="v", text="Pick", options=options), v="text"
    )
    run(Engine(check(flow), host).begin(state))
    assert host.sent[0].buttons is None and host.sent[0].list_options == options
