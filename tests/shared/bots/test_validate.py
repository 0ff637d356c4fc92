"""Each rule of a flow's shape (start, edges, ports, kinds, settings, sizes), reported with
the node it concerns; every problem at once. The checks on the built graph:
test_graph_checks.py."""

from __future__ import annotations

from typing import Any

import pytest

from shared.bots.graph import MAX_NODES, Graph
from shared.bots.nodes import Ask
from shared.bots.validate import check, problems
from shared.errors import Unprocessable
from tests.shared.bots.flows import about, chain, edge, graph, lead_flow, node


def test_the_sample_flow_is_sound() -> None:
    built = check(lead_flow())
    assert isinstance(built, Graph)
    assert built.start() == "start"
    assert isinstance(built.nodes["ask_email"], Ask)
    assert built.next_of("is_premium", "false") == "bye"


def test_exactly_one_start() -> None:
    none = graph([node("a", "end")], [])
    assert any("exactly one start" in m and "0" in m for _, m in about(none))
    two = graph(
        [node("s1", "start"), node("s2", "start"), node("e", "end")],
        [edge("s1", "e"), edge("s2", "e")],
    )
    assert [n for n, m in about(two) if "exactly one start" in m] == ["s2"]


def test_a_dangling_edge_names_its_node() -> None:
    raw = chain(node("hello", "send_message", text="hi"))
    raw["edges"].append(edge("hello", "nowhere"))
    assert ("hello", "dangling edge to 'nowhere'") in about(raw)


def test_an_edge_from_no_node() -> None:
    raw = chain(node("e", "end"))
    raw["edges"].append(edge("ghost", "e"))
    assert ("ghost", "the edge leaves no node") in about(raw)


def test_a_port_the_kind_does_not_have() -> None:
    raw = chain(node("e", "end"))
    raw["edges"].append(edge("e", "start"))
    assert any(n == "e" and "no port 'next'" in m for n, m in about(raw))


def test_two_edges_on_one_port() -> None:
    raw = chain(node("a", "send_message", text="a"), node("b", "end"))
    raw["nodes"].append(node("c", "end"))
    raw["edges"].append(edge("a", "c"))
    assert any(n == "a" and "two edges" in m for n, m in about(raw))


def test_an_unknown_kind_names_the_node() -> None:
    raw = chain(node("weird", "teleport"))
    found = about(raw)
    assert found[0][0] == "weird" and "unknown node kind 'teleport'" in found[0][1]
    with pytest.raises(Unprocessable) as refused:
        check(raw)
    assert refused.value.message.startswith("node weird: kind: unknown node kind")


@pytest.mark.parametrize(
    ("settings", "place"),
    [
        ({"kind": "send_message"}, "a message needs text or media"),
        (
            {
                "kind": "send_message",
                "text": "x",
                "buttons": [{"id": str(i), "title": "t"} for i in range(4)],
            },
            "buttons",
        ),
        (
            {"kind": "ask", "text": "?", "variable": "v", "type": "choice"},
            "options go with type choice",
        ),
        (
            {"kind": "ask", "text": "?", "variable": "v", "type": "number", "min": 5, "max": 1},
            "min is above",
        ),
        ({"kind": "ask", "text": "?", "variable": "v", "max_retries": 99}, "max_retries"),
        ({"kind": "wait", "seconds": 0}, "seconds"),
        ({"kind": "http", "url": "ftp://example.com/x"}, "url"),
        ({"kind": "http", "url": "https://example.com", "timeout_seconds": 60}, "timeout_seconds"),
        ({"kind": "handoff", "method": "user"}, "user_id goes with method user"),
        ({"kind": "condition"}, "a condition needs"),
        ({"kind": "set_variable", "value": 1}, "set a variable"),
        ({"kind": "tag", "tag": ""}, "tag"),
    ],
)
def test_settings_valid_for_their_kind(settings: dict[str, Any], place: str) -> None:
    raw = chain({"id": "bad", **settings}, node("e", "end"), v="text")
    found = [(p["node"], p["field"] + " " + p["message"]) for p in problems(raw)]
    assert any(n == "bad" and place in m for n, m in found), found


def test_duplicate_ids() -> None:
    raw = chain(node("a", "end"))
    raw["nodes"].append(node("a", "end"))
    assert ("a", "another node has this id") in about(raw)


def test_every_problem_is_reported_at_once() -> None:
    raw = chain(node("weird", "teleport"), node("say", "send_message"), node("e", "end"))
    raw["edges"].append(edge("e", "ghost"))
    nodes = {p["node"] for p in problems(raw)}
    assert {"weird", "say", "e"} <= nodes


def test_size_limits() -> None:
    many = chain(*[node(f"n{i}", "send_message", text="x") for i in range(MAX_NODES + 1)])
    assert [p["field"] for p in problems(many)] == ["size"]
    with pytest.raises(Unprocessable) as refused:
        check(many)
    assert refused.value.code == "flow_too_large"
    huge = chain(*[node(f"n{i}", "send_message", text="x" * 4000) for i in range(80)])
    assert problems(huge)[0]["field"] == "size"


def test_schema_version_and_shape() -> None:
    assert about({"schema_version": 2, "nodes": [node("s", "start")], "edges": []}) == [
        (None, "only version 1 is known")
    ]
    assert about([]) == [(None, "a flow's graph is a JSON object")]
    assert about({"nodes": "x"})[0] == (None, "a list of at least one node")
