"""A bot flow's graph: nodes, edges, declared variables, with a versioned schema.

    {"schema_version": 1,
     "variables": {"email": "text", "age": "number"},
     "nodes": [{"id": "start", "kind": "start"}, {"id": "ask_email", "kind": "ask", …}],
     "edges": [{"from": "start", "to": "ask_email"}, {"from": "check", "port": "true", …}]}

This module holds the schema's version and size limits, the edges and the graph
itself; the node kinds are in `shared.bots.nodes`, the variables' names, types and
`{{ name }}` in `shared.bots.variables`. Parsing is done node by node
(`shared.bots.validate`), so one bad node never hides the problems of others.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.bots.nodes import Settings, Start
from shared.bots.variables import BUILTINS, VariableType

SCHEMA_VERSION = 1
MAX_NODES = 200
MAX_EDGES = 600
MAX_BYTES = 256 * 1024


class Edge(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    source: str = Field(alias="from", max_length=64)
    target: str = Field(alias="to", max_length=64)
    port: str = Field(default="next", max_length=32)


class Graph(BaseModel):
    """A checked graph (shared.bots.validate.check makes one)."""

    model_config = ConfigDict(frozen=True)
    schema_version: Literal[1] = 1
    variables: dict[str, VariableType] = Field(default_factory=dict)
    nodes: dict[str, Settings]
    edges: list[Edge]

    def start(self) -> str:
        return next(n.id for n in self.nodes.values() if isinstance(n, Start))

    def next_of(self, node: str, port: str = "next") -> str | None:
        return next((e.target for e in self.edges if e.source == node and e.port == port), None)

    def variable_types(self) -> dict[str, VariableType]:
        return {**BUILTINS, **self.variables}
