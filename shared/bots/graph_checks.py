"""The checks that need a built graph: every node reachable from the start, every
cycle passing through a node that waits (ask, wait), every variable declared and set
on every path before it is read, and the variables filters parsed. Each returns its
problems with the node they concern (shared.bots.validate runs them in that order).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from shared.bots.conditions import variables_catalog
from shared.bots.graph import Graph
from shared.bots.nodes import Ask, Condition, Http, Settings
from shared.bots.variables import BUILTINS
from shared.errors import Unprocessable
from shared.filters import parse_filter

Problem = dict[str, Any]


def problem(node: str | None, field: str, message: str) -> Problem:
    return {"node": node, "field": field, "message": message}


def _successors(graph: Graph) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for edge in graph.edges:
        out[edge.source].append(edge.target)
    return out


def reachability(graph: Graph) -> list[Problem]:
    out = _successors(graph)
    seen = {graph.start()}
    stack = [graph.start()]
    while stack:
        for target in out[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return [
        problem(node, "edges", "not reachable from the start")
        for node in graph.nodes
        if node not in seen
    ]


def cycles(graph: Graph) -> list[Problem]:
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
                        problem(
                            m,
                            "edges",
                            f"a cycle that waits for nobody ({ring}): add an ask or wait",
                        )
                        for m in sorted(component)
                    ]
    return found


def definitions(graph: Graph) -> list[Problem]:
    """Every variable read is declared and set on every path from the start (a forward
    must-analysis: what is set on entry to a node is what all its predecessors set)."""
    declared = graph.variable_types()
    found: list[Problem] = []
    for node in graph.nodes.values():
        for name in sorted(node.reads() | node.writes()):
            if name not in declared:
                found.append(problem(node.id, "variables", f"variable {name!r} is not declared"))
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
                problem(node_id, "variables", f"variable {name!r} may be read before it is set")
            )
    return found


def _written(node: Settings, port: str) -> frozenset[str]:
    if isinstance(node, Ask) and port == "failed":
        return frozenset()  # no valid answer: the variable stays unset
    if isinstance(node, Http) and port == "success":
        return frozenset(node.writes() | set(node.save))
    return frozenset(node.writes())


def filters(graph: Graph) -> list[Problem]:
    """The variables filters, parsed against the declared variables. (Contact and
    conversation filters need the organization's custom fields: checked on save.)"""
    catalog = variables_catalog(graph.variable_types())
    found = []
    for node in graph.nodes.values():
        if isinstance(node, Condition) and node.variables is not None:
            try:
                parse_filter(node.variables, catalog)
            except Unprocessable as exc:
                found.append(problem(node.id, "variables", exc.message))
    return found
