"""Graphs for the bot tests: small builders, sample flows, and a graph's problems in short."""

from __future__ import annotations

import itertools
from typing import Any

from shared.bots.validate import problems


def node(node_id: str, kind: str, **settings: Any) -> dict[str, Any]:
    return {"id": node_id, "kind": kind, **settings}


def edge(source: str, target: str, port: str = "next") -> dict[str, Any]:
    return {"from": source, "to": target, "port": port}


def graph(
    nodes: list[dict[str, Any]], edges: list[dict[str, Any]], **variables: str
) -> dict[str, Any]:
    return {"schema_version": 1, "variables": variables, "nodes": nodes, "edges": edges}


def chain(*nodes: dict[str, Any], **variables: str) -> dict[str, Any]:
    """The nodes one after the other, after a start."""
    everything = [node("start", "start"), *nodes]
    return graph(
        everything,
        [edge(a["id"], b["id"]) for a, b in itertools.pairwise(everything)],
        **variables,
    )


# Greets by name, asks an age (retried) and an e-mail, and says both back.
QUIZ = chain(
    node("hi", "send_message", text="Hi {{ contact_name }}"),
    node(
        "q1",
        "ask",
        text="Your age?",
        type="number",
        variable="age",
        retry_prompt="A number, please",
    ),
    node("q2", "ask", text="Your e-mail?", type="email", variable="email"),
    node("done", "send_message", text="{{ age }} / {{ email }}"),
    age="number",
    email="text",
)


def lead_flow(*, url: str = "https://crm.example.com/leads") -> dict[str, Any]:
    """Greets, asks an e-mail (retried), a plan choice, branches on it, looks the lead up,
    and hands premium leads to a person."""
    return graph(
        [
            node("start", "start"),
            node("hello", "send_message", text="Hi {{ contact_name }}!"),
            node(
                "ask_email",
                "ask",
                type="email",
                variable="email",
                text="Your e-mail?",
                retry_prompt="That is not an e-mail address.",
                max_retries=1,
            ),
            node(
                "ask_plan",
                "ask",
                type="choice",
                variable="plan",
                text="Which plan?",
                options=[{"id": "basic", "title": "Basic"}, {"id": "premium", "title": "Premium"}],
            ),
            node(
                "is_premium",
                "condition",
                variables={"field": "variables.plan", "op": "eq", "value": "premium"},
            ),
            node(
                "lookup",
                "http",
                url=url,
                body={"email": "{{ email }}"},
                save={"score": "lead.score"},
                status_variable="lookup_status",
            ),
            node("thanks", "send_message", text="Thanks, {{ email }} (score {{ score }})."),
            node("human", "handoff", text="A colleague will take over."),
            node("bye", "send_message", text="Enjoy the basic plan."),
            node("sorry", "send_message", text="Let us try later."),
            node("end", "end"),
        ],
        [
            edge("start", "hello"),
            edge("hello", "ask_email"),
            edge("ask_email", "ask_plan"),
            edge("ask_email", "sorry", "failed"),
            edge("ask_plan", "is_premium"),
            edge("is_premium", "lookup", "true"),
            edge("is_premium", "bye", "false"),
            edge("lookup", "thanks", "success"),
            edge("lookup", "human", "failure"),
            edge("thanks", "human"),
            edge("bye", "end"),
            edge("sorry", "end"),
        ],
        email="text",
        plan="text",
        score="number",
        lookup_status="number",
    )


def about(raw: Any) -> list[tuple[str | None, str]]:
    """The graph's problems as (node, message)."""
    return [(p["node"], p["message"]) for p in problems(raw)]
