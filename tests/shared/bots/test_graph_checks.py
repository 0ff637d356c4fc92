"""The checks on a built graph, each reported with its node: reachability, cycles that
wait for nobody, variables read before they are set, variables filters."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.shared.bots.flows import about, chain, edge, graph, node


def test_every_node_reachable() -> None:
    raw = chain(node("e", "end"))
    raw["nodes"].append(node("island", "send_message", text="alone"))
    assert about(raw) == [("island", "not reachable from the start")]


def test_a_cycle_without_a_wait_is_refused_naming_its_nodes() -> None:
    raw = chain(
        node("a", "send_message", text="a"),
        node("b", "set_variable", variable="x", value=1),
        x="number",
    )
    raw["edges"].append(edge("b", "a"))
    found = about(raw)
    assert {n for n, m in found if "cycle" in m} == {"a", "b"}


def test_a_self_loop_is_a_cycle() -> None:
    raw = graph(
        [
            node("s", "start"),
            node("c", "condition", variables={"field": "variables.x", "op": "is_set"}),
            node("x", "set_variable", variable="x", value=1),
        ],
        [edge("s", "x"), edge("x", "c"), edge("c", "c", "true")],
        x="number",
    )
    assert any(n == "c" and "cycle" in m for n, m in about(raw))


def test_a_cycle_through_a_question_or_a_wait_is_fine() -> None:
    asked = chain(
        node("q", "ask", text="again?", variable="answer"),
        node("say", "send_message", text="ok"),
        answer="text",
    )
    asked["edges"].append(edge("say", "q"))
    assert about(asked) == []
    waited = chain(node("w", "wait", seconds=60), node("say", "send_message", text="ping"))
    waited["edges"].append(edge("say", "w"))
    assert about(waited) == []


def test_a_variable_read_before_it_is_set() -> None:
    raw = chain(node("say", "send_message", text="Hello {{ email }}"), email="text")
    assert about(raw) == [("say", "variable 'email' may be read before it is set")]


def test_a_variable_set_on_one_branch_only() -> None:
    raw = graph(
        [
            node("s", "start"),
            node("c", "condition", conversation={"field": "status", "op": "eq", "value": "open"}),
            node("set", "set_variable", variable="v", value="yes"),
            node("say", "send_message", text="{{ v }}"),
        ],
        [edge("s", "c"), edge("c", "set", "true"), edge("c", "say", "false"), edge("set", "say")],
        v="text",
    )
    assert about(raw) == [("say", "variable 'v' may be read before it is set")]


def test_an_answer_is_not_set_on_the_failed_port() -> None:
    raw = chain(
        node("q", "ask", text="Mail?", type="email", variable="email"),
        node("say", "send_message", text="{{ email }}"),
        email="text",
    )
    raw["edges"].append(edge("q", "say", "failed"))
    raw["edges"] = [e for e in raw["edges"] if not (e["from"] == "q" and e["port"] == "next")] + [
        edge("q", "say")
    ]
    assert about(raw) == [("say", "variable 'email' may be read before it is set")]


def test_http_mappings_exist_after_success_only() -> None:
    raw = graph(
        [
            node("s", "start"),
            node("h", "http", url="https://x.example.com", save={"score": "score"}),
            node("say", "send_message", text="{{ score }}"),
        ],
        [edge("s", "h"), edge("h", "say", "success"), edge("h", "say", "failure")],
        score="number",
    )
    assert about(raw) == [("say", "variable 'score' may be read before it is set")]


def test_an_undeclared_variable() -> None:
    raw = chain(node("q", "ask", text="?", variable="age"))
    assert about(raw) == [("q", "variable 'age' is not declared")]


def test_builtins_are_always_set() -> None:
    assert (
        about(chain(node("say", "send_message", text="Hi {{ contact_name }} on {{ channel }}")))
        == []
    )


def _has_loop_without_wait(kinds: list[str], edges: list[tuple[int, int]]) -> bool:
    """Kahn's algorithm over the nodes that do not wait: a loop is what never drains."""
    alive = {i for i, k in enumerate(kinds) if k != "wait"}
    inner = [(a, b) for a, b in edges if a in alive and b in alive]
    while True:
        sources = {n for n in alive if not any(b == n and a in alive for a, b in inner)}
        if not sources:
            return bool(alive)
        alive -= sources


@settings(max_examples=80, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(["condition", "wait"]), min_size=1, max_size=9), st.data())
def test_cycles_agree_with_a_brute_force_check(kinds: list[str], data: st.DataObject) -> None:
    n = len(kinds)
    nodes = [node("s", "start")] + [
        node(f"n{i}", "condition", variables={"field": "variables.channel", "op": "is_set"})
        if k == "condition"
        else node(f"n{i}", "wait", seconds=5)
        for i, k in enumerate(kinds)
    ]
    edges = [edge("s", "n0")]
    pairs = []
    for i, k in enumerate(kinds):
        for port in ("true", "false") if k == "condition" else ("next",):
            target = data.draw(st.none() | st.integers(0, n - 1))
            if target is not None:
                edges.append(edge(f"n{i}", f"n{target}", port))
                pairs.append((i, target))
    cyclic = any("cycle" in m for _, m in about(graph(nodes, edges)))
    assert cyclic == _has_loop_without_wait(kinds, pairs)


def test_a_variables_condition_in_the_filter_language() -> None:
    bad = chain(
        node("set", "set_variable", variable="age", value=3),
        node("c", "condition", variables={"field": "variables.age", "op": "contains", "value": 1}),
        age="number",
    )
    found = about(bad)
    assert len(found) == 1 and found[0][0] == "c" and "contains" in found[0][1]
    good = chain(
        node("set", "set_variable", variable="age", value=3),
        node("c", "condition", variables={"field": "variables.age", "op": "gte", "value": 18}),
        age="number",
    )
    assert about(good) == []
