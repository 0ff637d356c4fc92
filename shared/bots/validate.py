"""Checking a flow's graph, reporting every problem with the node it concerns.

    problems(raw)  → [{"node", "field", "message"}, …]   ([] when the graph is sound)
    check(raw)     → Graph, or a 422 `invalid_flow` listing them all

The rules: the schema version is known; sizes are bounded; node ids are unique and
kinds known; each node's settings are valid for its kind; exactly one start; every
edge joins existing nodes through a port of its source, one edge per port; every
node is reachable from the start; a cycle passes through a node that waits (ask,
wait); every variable is declared and set on every path before it is read.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from typing import Any

from pydantic import ValidationError

from shared.bots.conditions import variables_catalog
from shared.bots.graph import (
    BUILTINS,
    KINDS,
    MAX_BYTES,
    MAX_EDGES,
    MAX_NODES,
    SCHEMA_VERSION,
    VARIABLE,
    Ask,
    Condition,
    Edge,
    Graph,
    Http,
    Settings,
    Start,
)
from shared.errors import Unprocessable
from shared.filters import parse_filter

Problem = dict[str, Any]


def _problem(node: str | None, field: str, message: str) -> Problem:
    return {"node": node, "field": field, "message": message}


def check(raw: Any) -> Graph:
    graph, found = parse(raw)
    if found or graph is None:
        raise refusal(found)
    return graph


def problems(raw: Any) -> list[Problem]:
    return parse(raw)[1]


def refusal(found: list[Problem]) -> Unprocessable:
    first = found[0]
    where = f"node {first['node']}: " if first["node"] else ""
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    code = "flow_too_large" if any(p["field"] == "size" for p in found) else "invalid_flow"
    return Unprocessable(
        f"{where}{first['field']}: {first['message']}{more}", code=code, details=found
    )


def parse(raw: Any) -> tuple[Graph | None, list[Problem]]:
    """The graph, if it is sound enough to build, and every problem found."""
    if not isinstance(raw, dict):
        return None, [_problem(None, "graph", "a flow's graph is a JSON object")]
    try:
        size = len(json.dumps(raw, separators=(",", ":")).encode())
    except (TypeError, ValueError):
        return None, [_problem(None, "graph", "the graph is not plain JSON")]
    found: list[Problem] = []
    if size > MAX_BYTES:
        return None, [_problem(None, "size", f"the graph is {size} bytes; at most {MAX_BYTES}")]
    if raw.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        found.append(_problem(None, "schema_version", f"only version {SCHEMA_VERSION} is known"))
    unknown = set(raw) - {"schema_version", "variables", "nodes", "edges", "layout"}
    for key in sorted(unknown):
        found.append(_problem(None, key, "unknown key"))
    variables = _variables(raw.get("variables", {}), found)
    nodes = _nodes(raw.get("nodes"), found)
    edges = _edges(raw.get("edges", []), nodes, found)
    if nodes is None or edges is None:
        return None, found
    starts = [n.id for n in nodes.values() if isinstance(n, Start)]
    if len(starts) != 1:
        found.append(
            _problem(
                starts[1] if len(starts) > 1 else None,
                "kind",
                f"a flow has exactly one start node; this one has {len(starts)}",
            )
        )
    if found:
        return None, found
    graph = Graph(variables=variables, nodes=nodes, edges=edges)
    found += _reachability(graph)
    found += _cycles(graph)
    if not found:
        found += _definitions(graph)
    if not found:
        found += _filters(graph)
    return (None if found else graph), found


def _variables(raw: Any, found: list[Problem]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        found.append(_problem(None, "variables", "an object of name → type"))
        return {}
    kept = {}
    for name, kind in raw.items():
        if not isinstance(name, str) or not re.match(VARIABLE, name) or name in BUILTINS:
            found.append(_problem(None, f"variables.{name}", "not a variable name (or a built-in)"))
        elif kind not in ("text", "number", "boolean", "date"):
            found.append(_problem(None, f"variables.{name}", "type text, number, boolean or date"))
        else:
            kept[name] = kind
    return kept


def _nodes(raw: Any, found: list[Problem]) -> dict[str, Settings] | None:
    if not isinstance(raw, list) or not raw:
        found.append(_problem(None, "nodes", "a list of at least one node"))
        return None
    if len(raw) > MAX_NODES:
        found.append(_problem(None, "size", f"{len(raw)} nodes; at most {MAX_NODES}"))
        return None
    nodes: dict[str, Settings] = {}
    for index, item in enumerate(raw):
        node_id = item.get("id") if isinstance(item, dict) else None
        name = node_id if isinstance(node_id, str) else f"#{index}"
        if not isinstance(item, dict):
            found.append(_problem(name, "node", "a node is an object"))
            continue
        model = KINDS.get(item.get("kind"))  # type: ignore[arg-type]
        if model is None:
            found.append(
                _problem(
                    name,
                    "kind",
                    f"unknown node kind {item.get('kind')!r}; known: {', '.join(KINDS)}",
                )
            )
            continue
        try:
            node = model.model_validate(item)
        except ValidationError as exc:
            for error in exc.errors():
                place = ".".join(str(p) for p in error["loc"]) or "settings"
                found.append(_problem(name, place, error["msg"]))
            continue
        if node.id in nodes:
            found.append(_problem(node.id, "id", "another node has this id"))
            continue
        nodes[node.id] = node
    return nodes


def _edges(raw: Any, nodes: dict[str, Settings] | None, found: list[Problem]) -> list[Edge] | None:
    if not isinstance(raw, list):
        found.append(_problem(None, "edges", "a list of edges"))
        return None
    if len(raw) > MAX_EDGES:
        found.append(_problem(None, "size", f"{len(raw)} edges; at most {MAX_EDGES}"))
        return None
    edges: list[Edge] = []
    taken: set[tuple[str, str]] = set()
    for index, item in enumerate(raw):
        try:
            edge = Edge.model_validate(item)
        except ValidationError as exc:
            source = item.get("from") if isinstance(item, dict) else None
            found.append(_problem(source, f"edges[{index}]", exc.errors()[0]["msg"]))
            continue
        if nodes is None:
            continue
        source = nodes.get(edge.source)
        if source is None:
            found.append(_problem(edge.source, f"edges[{index}]", "the edge leaves no node"))
            continue
        if edge.target not in nodes:
            found.append(
                _problem(edge.source, f"edges[{index}]", f"dangling edge to {edge.target!r}")
            )
            continue
        if edge.port not in type(source).ports:
            ports = ", ".join(type(source).ports) or "none"
            found.append(
                _problem(edge.source, f"edges[{index}]", f"no port {edge.port!r} (ports: {ports})")
            )
            continue
        if (edge.source, edge.port) in taken:
            found.append(
                _problem(edge.source, f"edges[{index}]", f"port {edge.port!r} has two edges")
            )
            continue
        taken.add((edge.source, edge.port))
        edges.append(edge)
    return edges


def _successors(graph: Graph) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for edge in graph.edges:
        out[edge.source].append(edge.target)
    return out


def _reachability(graph: Graph) -> list[Problem]:
    out = _successors(graph)
    seen = {graph.start()}
    stack = [graph.start()]
    while stack:
        for target in out[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return [
        _problem(node, "edges", "not reachable from the start")
        for node in graph.nodes
        if node not in seen
    ]


def _cycles(graph: Graph) -> list[Problem]:
    """Cycles among nodes that do not wait: strongly connected components (Tarjan's,
    iterative) of the graph without ask and wait nodes."""
    out = {
        n: [t for t in targets if not type(graph.nodes[t]).waits]
        for n, targets in _successors(graph).items()
        if not type(graph.nodes[n]).waits
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[Problem] = []
    counter = 0
    for root in graph.nodes:
        if root in index or type(graph.nodes[root]).waits:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = out.get(node, [])
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in out.get(node, []):
                    ring = " → ".join(sorted(component))
                    found += [
                        _problem(
                            m,
                            "edges",
                            f"a cycle that waits for nobody ({ring}): add an ask or wait",
                        )
                        for m in sorted(component)
                    ]
    return found


def _definitions(graph: Graph) -> list[Problem]:
    """Every variable read is declared and set on every path from the start (a forward
    must-analysis: what is set on entry to a node is what all its predecessors set)."""
    declared = graph.variable_types()
    found: list[Problem] = []
    for node in graph.nodes.values():
        for name in sorted(node.reads() | node.writes()):
            if name not in declared:
                found.append(_problem(node.id, "variables", f"variable {name!r} is not declared"))
    if found:
        return found
    everything = frozenset(declared)
    entry: dict[str, frozenset[str]] = {n: everything for n in graph.nodes}
    start = graph.start()
    entry[start] = frozenset(BUILTINS)
    predecessors: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for edge in graph.edges:
        predecessors[edge.target].append((edge.source, edge.port))
    changed = True
    while changed:
        changed = False
        for node_id in graph.nodes:
            if node_id == start:
                continue
            sets = [entry[p] | _written(graph.nodes[p], port) for p, port in predecessors[node_id]]
            new = frozenset.intersection(*sets) if sets else everything
            if new != entry[node_id]:
                entry[node_id], changed = new, True
    for node_id, node in graph.nodes.items():
        for name in sorted(node.reads() - entry[node_id]):
            found.append(
                _problem(node_id, "variables", f"variable {name!r} may be read before it is set")
            )
    return found


def _written(node: Settings, port: str) -> frozenset[str]:
    if isinstance(node, Ask) and port == "failed":
        return frozenset()  # no valid answer: the variable stays unset
    if isinstance(node, Http) and port == "success":
        return frozenset(node.writes() | set(node.save))
    return frozenset(node.writes())


def _filters(graph: Graph) -> list[Problem]:
    """The variables filters, parsed against the declared variables. (Contact and
    conversation filters need the organization's custom fields: checked on save.)"""
    catalog = variables_catalog(graph.variable_types())
    found = []
    for node in graph.nodes.values():
        if isinstance(node, Condition) and node.variables is not None:
            try:
                parse_filter(node.variables, catalog)
            except Unprocessable as exc:
                found.append(_problem(node.id, "variables", exc.message))
    return found
