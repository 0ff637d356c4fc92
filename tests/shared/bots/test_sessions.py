"""Sessions live: version pinning, an agent's takeover, the automation action's start,
and rows written past the functions. Graph's send endpoint is mocked with respx."""

from __future__ import annotations

import httpx
import respx

from shared.db import Connection
from shared.runtime import Runtime
from tests.shared.automation.kit import make_rule
from tests.shared.bots.flows import QUIZ, chain, node
from tests.shared.bots.kit import (
    conversation_of,
    keyword,
    make_flow,
    mock_sends,
    publish_draft,
    run_worker,
    say,
    sent_texts,
    session_of,
    world,
)


async def test_a_session_stays_on_its_version_across_a_publish(
    client: httpx.AsyncClient, db: Connection
) -> None:
    w = await world(db)
    flow = await make_flow(db, w.org, QUIZ, triggers=keyword("start"))
    changed = chain(
        node("q1", "ask", text="How old?", type="number", variable="age"),
        node("bye", "send_message", text="v2 says {{ age }}"),
        age="number",
    )
    with respx.mock as router:
        sends = mock_sends(router)
        await say(client, w, "start")
        first = await session_of(db, w.org)
        await db.execute("update bot_flows set draft = $2 where id = $1", flow, changed)
        await publish_draft(db, flow)
        await say(client, w, "41")
        await say(client, w, "z@y.co")
        assert sent_texts(sends)[-1] == "41 / z@y.co"  # still version 1
        await say(client, w, "start", sender="15551230002")
    second = await session_of(db, w.org)
    assert second["flow_version_id"] != first["flow_version_id"]
    assert sent_texts(sends)[-1] == "How old?"


async def test_an_agent_reply_hands_the_conversation_over(
    client: httpx.AsyncClient, db: Connection
) -> None:
    w = await world(db)
    flow = chain(node("q", "ask", text="Anything?", variable="x"), node("end", "end"), x="text")
    await make_flow(db, w.org, flow, triggers=keyword("go"))
    with respx.mock as router:
        sends = mock_sends(router)
        await say(client, w, "go")
        conversation = await conversation_of(db, w.org)
        await db.execute(
            "insert into messages (organization_id, conversation_id, channel_account_id, direction,"
            " sender_type, sender_id, body, status) select organization_id, id, channel_account_id,"
            " 'outbound', 'user', $2, 'I am here', 'queued' from conversations where id = $1",
            conversation,
            w.owner,
        )
        await say(client, w, "an answer for the agent")
    session = await session_of(db, w.org)
    assert (
        session["status"] == "handed_off"
        and session["end_reason"] == "an agent replied in the conversation"
    )
    assert sent_texts(sends) == ["Anything?"]


async def test_the_automation_action_starts_a_flow(
    runtime: Runtime, db: Connection, client: httpx.AsyncClient
) -> None:
    w = await world(db)
    flow = await make_flow(db, w.org, chain(node("hi", "send_message", text="from a rule")))
    await make_rule(
        db, w.org, "conversation.created", [{"type": "start_bot_flow", "flow_id": str(flow)}]
    )
    with respx.mock as router:
        sends = mock_sends(router)
        await say(client, w, "hello")
        await run_worker(runtime)
    session = await session_of(db, w.org)
    assert session["status"] == "completed" and session["started_by"]["type"] == "automation"
    assert sent_texts(sends) == ["from a rule"]


async def test_rows_written_past_the_functions_fail_alone(
    client: httpx.AsyncClient, db: Connection
) -> None:
    """A broken version fails its session; a pattern PostgreSQL refuses matches nothing;
    the organization's other flows still run."""
    w = await world(db)
    await make_flow(db, w.org, {"nodes": []}, triggers=keyword("broken"))
    await make_flow(
        db,
        w.org,
        chain(node("hi", "send_message", text="fine")),
        triggers=[{"type": "regex", "pattern": "(("}, {"type": "keyword", "keywords": ["fine"]}],
    )
    with respx.mock as router:
        sends = mock_sends(router)
        await say(client, w, "broken")
        await say(client, w, "fine", sender="15551230009")
    failed = await db.fetchrow(
        "select status, end_reason from bot_sessions order by started_at limit 1"
    )
    assert failed["status"] == "failed" and failed["end_reason"].startswith(
        "the flow's version is invalid"
    )
    assert sent_texts(sends) == ["fine"]
