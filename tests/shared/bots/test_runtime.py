"""Live sessions through the real WhatsApp webhook: triggers, answers in order, version
pinning, concurrency, timeouts, delays, takeover, the worker's path and the automation
action. Graph's send endpoint is mocked with respx."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import respx

from shared.bots import runtime as bots
from shared.db import Connection
from shared.runtime import Runtime
from tests.shared.automation.kit import make_rule
from tests.shared.bots.flows import chain, edge, graph, node
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


async def test_a_keyword_starts_a_flow_and_answers_are_taken_in_order(
    client: httpx.AsyncClient, db: Connection
) -> None:
    w = await world(db)
    await make_flow(db, w.org, QUIZ, triggers=keyword("start"))
    with respx.mock as router:
        sends = mock_sends(router)
        await say(client, w, "hello")  # no keyword: nothing
        assert await session_of(db, w.org) is None and not sends.called
        await say(client, w, "START")
        await say(client, w, "forty")
        await say(client, w, "40")
        await say(client, w, "a@b.co")
    texts = sent_texts(sends)
    assert texts[0].startswith("Hi ") and texts[1:] == [
        "Your age?",
        "A number, please",
        "Your e-mail?",
        "40 / a@b.co",
    ]
    session = await session_of(db, w.org)
    assert session["status"] == "completed" and session["variables"]["age"] == 40
    statuses = await db.fetch(
        "select sender_type::text, status::text from messages where direction = 'outbound'"
    )
    assert {(r["sender_type"], r["status"]) for r in statuses} == {("bot", "sent")}
    steps = await db.fetch(
        "select node_id, variables_changed from bot_session_steps where session_id = $1 order by"
        " id",
        session["id"],
    )
    assert [s["node_id"] for s in steps] == ["start", "hi", "q1", "q1", "q1", "q2", "q2", "done"]
    assert steps[4]["variables_changed"] == {"age": 40}


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


async def test_two_quick_replies_never_run_the_flow_twice(
    runtime: Runtime, client: httpx.AsyncClient, db: Connection
) -> None:
    w = await world(db)
    flow = chain(
        node("q", "ask", text="Say something", variable="said"),
        node("done", "send_message", text="got {{ said }}"),
        said="text",
    )
    await make_flow(db, w.org, flow, triggers=keyword("go"))
    with respx.mock as router:
        sends = mock_sends(router)
        await say(client, w, "go")
        conversation = await conversation_of(db, w.org)
        # two replies stored, then handled at the same time by the inline pass, the
        # worker and a second inline pass: one answer each, in order, once
        ids = []
        for text in ("first", "second"):
            ids.append(
                await db.fetchval(
                    "insert into messages (organization_id, conversation_id, channel_account_id,"
                    " direction, sender_type, body, status) select organization_id, id,"
                    " channel_account_id, 'inbound', 'contact', $2, 'received' from conversations"
                    " where id = $1 returning id",
                    conversation,
                    text,
                )
            )
        handled = await asyncio.gather(
            *(
                bots.handle_message(runtime, organization_id=w.org, message_id=m)
                for m in (ids[1], ids[0], ids[1], ids[0])
            )
        )
    assert sum(handled) >= 1
    assert sent_texts(sends) == ["Say something", "got first"]
    session = await session_of(db, w.org)
    assert session["status"] == "completed" and session["variables"]["said"] == "first"
    answers = await db.fetchval(
        "select count(*) from bot_session_steps where session_id = $1 and node_id = 'q'",
        session["id"],
    )
    assert answers == 2  # asked once, answered once


async def test_idle_sessions_time_out_and_delays_resume(
    client: httpx.AsyncClient, runtime: Runtime, db: Connection
) -> None:
    w = await world(db)
    flow = chain(
        node("hi", "send_message", text="wait for it"),
        node("pause", "wait", seconds=120),
        node("q", "ask", text="still there?", variable="x"),
        x="text",
    )
    await make_flow(db, w.org, flow, triggers=keyword("go"), timeout_seconds=600)
    with respx.mock as router:
        sends = mock_sends(router)
        await say(client, w, "go")
        session = await session_of(db, w.org)
        assert session["status"] == "waiting" and session["resume_at"] is not None
        now = datetime.now(UTC)
        assert await bots.sweep(runtime, now=now) == {"resumed": 0, "timed_out": 0, "forgotten": 0}
        counts = await bots.sweep(runtime, now=now + timedelta(seconds=121))
        assert counts["resumed"] == 1 and sent_texts(sends) == ["wait for it", "still there?"]
    assert (await session_of(db, w.org))["status"] == "waiting"
    counts = await bots.sweep(runtime, now=now + timedelta(seconds=60 * 60))
    assert counts["timed_out"] == 1
    ended = await session_of(db, w.org)
    assert (
        ended["status"] == "timed_out" and ended["end_reason"] == "no activity within the timeout"
    )


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


async def test_a_handoff_node_assigns_and_stops(client: httpx.AsyncClient, db: Connection) -> None:
    w = await world(db)
    flow = chain(
        node("h", "handoff", method="user", user_id=str(w.owner), text="A person will answer")
    )
    await make_flow(db, w.org, flow, triggers=keyword("human"))
    with respx.mock as router:
        sends = mock_sends(router)
        await say(client, w, "human")
        await say(client, w, "human")  # handed off: not started again while assigned? a new session
    assert sent_texts(sends)[0] == "A person will answer"
    assignee = await db.fetchval(
        "select assignee_id from conversations where organization_id = $1", w.org
    )
    assert assignee == w.owner
    statuses = await db.fetch("select status from bot_sessions where organization_id = $1", w.org)
    assert {r["status"] for r in statuses} == {"handed_off"}


async def test_the_worker_handles_what_the_inline_pass_did_not(
    runtime: Runtime, db: Connection
) -> None:
    w = await world(db)
    await make_flow(db, w.org, QUIZ, triggers=keyword("start"))
    conversation = None
    from tests.support import make_contact

    contact = await make_contact(db, w.org, name="Ann")
    await db.execute(
        "insert into contact_identities (organization_id, contact_id, channel, external_id)"
        " values ($1, $2, 'whatsapp', '15550001111')",
        w.org,
        contact,
    )
    conversation = await db.fetchval(
        "insert into conversations (organization_id, contact_id, channel_account_id,"
        " last_inbound_at)"
        " values ($1, $2, $3, now()) returning id",
        w.org,
        contact,
        w.account.id,
    )
    await db.execute(
        "insert into messages (organization_id, conversation_id, channel_account_id, direction,"
        " sender_type, body, status) values ($1, $2, $3, 'inbound', 'contact', 'start',"
        " 'received')",
        w.org,
        conversation,
        w.account.id,
    )
    with respx.mock as router:
        sends = mock_sends(router)
        await run_worker(runtime)
        assert sent_texts(sends) == ["Hi Ann", "Your age?"]
        await run_worker(runtime)  # handled once
    assert len(sends.calls) == 2
    delivered = await db.fetchval("select count(*) from event_deliveries where consumer = 'bots'")
    assert delivered >= 1


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


async def test_a_new_conversation_on_a_named_account(
    client: httpx.AsyncClient, runtime: Runtime, db: Connection
) -> None:
    w = await world(db)
    flow = chain(
        node("hi", "send_message", text="welcome"),
        node("q", "ask", text="Name?", variable="n"),
        n="text",
    )
    await make_flow(
        db,
        w.org,
        flow,
        triggers=[{"type": "new_conversation", "channel_account_ids": [str(w.account.id)]}],
    )
    with respx.mock as router:
        sends = mock_sends(router)
        await say(client, w, "hello there")  # the first message is the trigger, not the answer
        await run_worker(runtime)  # conversation.created finds the session: nothing twice
        await say(client, w, "Ann")
    assert sent_texts(sends) == ["welcome", "Name?"]
    session = await session_of(db, w.org)
    assert session["status"] == "completed" and session["variables"]["n"] == "Ann"


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


async def test_graph_edges_and_regex_trigger(client: httpx.AsyncClient, db: Connection) -> None:
    w = await world(db)
    flow = graph(
        [
            node("s", "start"),
            node("c", "condition", conversation={"field": "status", "op": "eq", "value": "open"}),
            node("yes", "send_message", text="open"),
            node("no", "send_message", text="closed"),
        ],
        [edge("s", "c"), edge("c", "yes", "true"), edge("c", "no", "false")],
    )
    await make_flow(db, w.org, flow, triggers=[{"type": "regex", "pattern": "^order #?[0-9]+$"}])
    with respx.mock as router:
        sends = mock_sends(router)
        await say(client, w, "order 12x")
        await say(client, w, "Order #1234")
    assert sent_texts(sends) == ["open"]


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
