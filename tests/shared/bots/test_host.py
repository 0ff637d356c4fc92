"""The live host in a session: a handoff node assigns, an opted-out contact stops the
session, an HTTP node branches on the answer. Graph's send endpoint is mocked with
respx."""

from __future__ import annotations

import httpx
import respx

from shared.db import Connection
from tests.shared.bots.flows import QUIZ, chain, edge, graph, node
from tests.shared.bots.kit import (
    keyword,
    make_flow,
    mock_sends,
    say,
    sent_texts,
    session_of,
    world,
)


async def test_a_handoff_node_assigns_and_stops(client: httpx.AsyncClient, db: Connection) -> None:
    """A handed-off conversation is the person's while assigned: a trigger starts no
    session in it; once unassigned, the trigger starts the flow again."""
    w = await world(db)
    flow = chain(
        node("h", "handoff", method="user", user_id=str(w.owner), text="A person will answer")
    )
    await make_flow(db, w.org, flow, triggers=keyword("human"))
    sessions = "select status from bot_sessions where organization_id = $1 order by started_at"
    with respx.mock as router:
        sends = mock_sends(router)
        await say(client, w, "human")
        await say(client, w, "human")
        assert sent_texts(sends) == ["A person will answer"]
        assignee = await db.fetchval(
            "select assignee_id from conversations where organization_id = $1", w.org
        )
        assert assignee == w.owner
        assert [r["status"] for r in await db.fetch(sessions, w.org)] == ["handed_off"]

        await db.execute(
            "update conversations set assignee_id = null where organization_id = $1", w.org
        )
        await say(client, w, "human")
    assert sent_texts(sends) == ["A person will answer"] * 2
    assert [r["status"] for r in await db.fetch(sessions, w.org)] == ["handed_off"] * 2


async def test_opted_out_contacts_stop_the_session(
    client: httpx.AsyncClient, db: Connection
) -> None:
    w = await world(db)
    await make_flow(db, w.org, QUIZ, triggers=keyword("start"))
    with respx.mock as router:
        sends = mock_sends(router)
        await say(client, w, "hello")
        await db.execute(
            "update contacts set opted_out_channels = '{whatsapp}' where organization_id = $1",
            w.org,
        )
        await say(client, w, "start")
    assert not sends.called
    session = await session_of(db, w.org)
    assert session["status"] == "failed" and "opted out" in session["end_reason"]


async def test_an_http_node_in_a_live_session(client: httpx.AsyncClient, db: Connection) -> None:
    """Through the guarded client to a mocked system: success maps, failure branches."""
    w = await world(db)
    flow = graph(
        [
            node("s", "start"),
            node(
                "h",
                "http",
                url="https://crm.example.com/lead?q={{ contact_phone }}",
                method="GET",
                save={"tier": "tier"},
            ),
            node("ok", "send_message", text="tier {{ tier }}"),
            node("ko", "send_message", text="no crm"),
        ],
        [edge("s", "h"), edge("h", "ok", "success"), edge("h", "ko", "failure")],
        tier="text",
    )
    await make_flow(db, w.org, flow, triggers=keyword("crm"))
    with respx.mock as router:
        sends = mock_sends(router)
        crm = router.get(url__startswith="https://crm.example.com/lead").mock(
            side_effect=[httpx.Response(200, json={"tier": "gold"}), httpx.Response(503)]
        )
        await say(client, w, "crm")
        await say(client, w, "crm")
    assert crm.calls[0].request.url.params["q"] == "+15551230001"
    assert sent_texts(sends) == ["tier gold", "no crm"]
    steps = await db.fetch(
        "select node_id, error from bot_session_steps where node_id = 'h' order by id"
    )
    assert [s["error"] for s in steps] == [None, "HTTP 503"]
