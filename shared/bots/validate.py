"""Checking a flow's graph, reporting every problem with the node it concerns.

    problems(raw)               → [{"node", "field", "message"}, …]   ([] when sound)
    check(raw)                  → Graph, or a 422 `invalid_flow` listing them all
    checked(conn, org, raw)     → check, then what needs the organization (on save)

The rules: the schema version is known; sizes are bounded; node ids are unique and
kinds known; each node's settings are valid for its kind; exactly one start; every
edge joins existing nodes through a port of its source, one edge per port. Then, on
the built graph (shared.bots.graph_checks): every node is reachable from the start;
a cycle passes through a node that waits (ask, wait); every variable is declared
and set on every path before it is read. On save, the contact and conversation
filters are parsed against the organization's custom fields, and the members and
webhook endpoints that nodes name must exist.
"""

from __future__ import annotations

import json
import re
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from shared.automation.conditions import parse_conditions
from shared.bots import graph_checks
from shared.bots.graph import MAX_BYTES, MAX_EDGES, MAX_NODES, SCHEMA_VERSION, Edge, Graph
from shared.bots.graph_checks import Problem, problem
from shared.bots.nodes import KINDS, Condition, Handoff, Http, Settings, Start
from shared.bots.variables import BUILTINS, VARIABLE
from shared.db import Connection
from shared.errors import Unprocessable


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
        return None, [problem(None, "graph", "a flow's graph is a JSON object")]
    try:
        size = len(json.dumps(raw, separators=(",", ":")).encode())
    except (TypeError, ValueError):
        return None, [problem(None, "graph", "the graph is not plain JSON")]
    found: list[Problem] = []
    if size > MAX_BYTES:
        return None, [problem(None, "size", f"the graph is {size} bytes; at most {MAX_BYTES}")]
    if raw.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        found.append(problem(None, "schema_version", f"only version {SCHEMA_VERSION} is known"))
    unknown = set(raw) - {"schema_version", "variables", "nodes", "edges", "layout"}
    for key in sorted(unknown):
        found.append(problem(None, key, "unknown key"))
    variables = _variables(raw.get("variables", {}), found)
    nodes = _nodes(raw.get("nodes"), found)
    edges = _edges(raw.get("edges", []), nodes, found)
    if nodes is None or edges is None:
        return None, found
    starts = [n.id for n in nodes.values() if isinstance(n, Start)]
    if len(starts) != 1:
        found.append(
            problem(
                starts[1] if len(starts) > 1 else None,
                "kind",
                f"a flow has exactly one start node; this one has {len(starts)}",
            )
        )
    if found:
        return None, found
    graph = Graph(variables=variables, nodes=nodes, edges=edges)
    found += graph_checks.reachability(graph)
    found += graph_checks.cycles(graph)
    if not found:
        found += graph_checks.definitions(graph)
    if not found:
        found += graph_checks.filters(graph)
    return (None if found else graph), found


def _variables(raw: Any, found: list[Problem]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        found.append(problem(None, "variables", "an object of name → type"))
        return {}
    kept = {}
    for name, kind in raw.items():
        if not isinstance(name, str) or not re.match(VARIABLE, name) or name in BUILTINS:
            found.append(problem(None, f"variables.{name}", "not a variable name (or a built-in)"))
        elif kind not in ("text", "number", "boolean", "date"):
            found.append(problem(None, f"variables.{name}", "type text, number, boolean or date"))
        else:
            kept[name] = kind
    return kept


def _nodes(raw: Any, found: list[Problem]) -> dict[str, Settings] | None:
    if not isinstance(raw, list) or not raw:
        found.append(problem(None, "nodes", "a list of at least one node"))
        return None
    if len(raw) > MAX_NODES:
        found.append(problem(None, "size", f"{len(raw)} nodes; at most {MAX_NODES}"))
        return None
    nodes: dict[str, Settings] = {}
    for index, item in enumerate(raw):
        node_id = item.get("id") if isinstance(item, dict) else None
        name = node_id if isinstance(node_id, str) else f"#{index}"
        if not isinstance(item, dict):
            found.append(problem(name, "node", "a node is an object"))
            continue
        model = KINDS.get(item.get("kind"))  # type: ignore[arg-type]
        if model is None:
            found.append(
                problem(
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
                found.append(problem(name, place, error["msg"]))
            continue
        if node.id in nodes:
            found.append(problem(node.id, "id", "another node has this id"))
            continue
        nodes[node.id] = node
    return nodes


def _edges(raw: Any, nodes: dict[str, Settings] | None, found: list[Problem]) -> list[Edge] | None:
    if not isinstance(raw, list):
        found.append(problem(None, "edges", "a list of edges"))
        return None
    if len(raw) > MAX_EDGES:
        found.append(problem(None, "size", f"{len(raw)} edges; at most {MAX_EDGES}"))
        return None
    edges: list[Edge] = []
    taken: set[tuple[str, str]] = set()
    for index, item in enumerate(raw):
        try:
            edge = Edge.model_validate(item)
        except ValidationError as exc:
            source = item.get("from") if isinstance(item, dict) else None
            found.append(problem(source, f"edges[{index}]", exc.errors()[0]["msg"]))
            continue
        if nodes is None:
            continue
        source = nodes.get(edge.source)
        if source is None:
            found.append(problem(edge.source, f"edges[{index}]", "the edge leaves no node"))
            continue
        if edge.target not in nodes:
            found.append(
                problem(edge.source, f"edges[{index}]", f"dangling edge to {edge.target!r}")
            )
            continue
        if edge.port not in type(source).ports:
            ports = ", ".join(type(source).ports) or "none"
            found.append(
                problem(edge.source, f"edges[{index}]", f"no port {edge.port!r} (ports: {ports})")
            )
            continue
        if (edge.source, edge.port) in taken:
            found.append(
                problem(edge.source, f"edges[{index}]", f"port {edge.port!r} has two edges")
            )
            continue
        taken.add((edge.source, edge.port))
        edges.append(edge)
    return edges


async def checked(conn: Connection, organization_id: UUID, raw: Any) -> Graph:
    """The graph, or a 422 listing every problem with its node."""
    graph, found = parse(raw)
    if graph is not None:
        found = await _organization_problems(conn, organization_id, graph)
    if found or graph is None:
        raise refusal(found)
    return graph


async def _organization_problems(conn: Connection, org: UUID, graph: Graph) -> list[Problem]:
    found: list[Problem] = []
    for node in graph.nodes.values():
        if isinstance(node, Condition) and (node.contact or node.conversation):
            given = {
                k: v
                for k, v in (("contact", node.contact), ("conversation", node.conversation))
                if v
            }
            try:
                await parse_conditions(
                    conn=conn, organization_id=org, trigger="message.received", conditions=given
                )
            except Unprocessable as exc:
                found.append({"node": node.id, "field": "conditions", "message": exc.message})
        if isinstance(node, Handoff) and node.user_id is not None:
            known = await conn.fetchval(
                "select exists (select 1 from public.organization_members where organization_id"
                " = $1"
                " and user_id::text = $2)",
                org,
                node.user_id,
            )
            if not known:
                found.append({"node": node.id, "field": "user_id", "message": "no such member"})
        if isinstance(node, Http) and node.signing_endpoint_id is not None:
            known = await conn.fetchval(
                "select exists (select 1 from public.webhook_endpoints where organization_id = $1"
                " and id::text = $2)",
                org,
                node.signing_endpoint_id,
            )
            if not known:
                found.append(
                    {"node": node.id, "field": "signing_endpoint_id", "message": "no such endpoint"}
                )
    return found
