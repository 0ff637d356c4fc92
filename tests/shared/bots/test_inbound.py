"""Inbound messages and new conversations through the real WhatsApp webhook: triggers,
answers in order, concurrency, and the worker's path. Graph's send endpoint is mocked
with respx."""

from __future__ import annotations

import asyncio

import httpx
import respx

from shared.bots.inbound import handle_message
from shared.db import Connection
from shared.runtime import Runtime
from tests.shared.bots.flows import QUIZ, chain, edge, graph, node
from tests.shared.bots.kit import (
    conversation_of,
    keyword,
    make_flow,
    mock_sends,
    run_worker,
    say,
    sent_texts,
    session_of,
    world,
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
                handle_message(runtime, organization_id=w.org, message_id=m)
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
