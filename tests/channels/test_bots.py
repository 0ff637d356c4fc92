"""A whole bot conversation through each channel's real, signed webhook: WhatsApp with
interactive buttons (the customer taps one) and Telegram with a reply keyboard. The
provider's send endpoint is mocked with respx and checked as each documents it."""

from __future__ import annotations

import copy
import json
import time

import httpx
import pytest
import respx

from shared.db import Connection
from tests.channels.kit import post
from tests.channels.whatsapp.kit import KIT as WHATSAPP
from tests.fixtures import load
from tests.shared.bots.flows import chain, node
from tests.shared.bots.kit import World, keyword, make_flow, mock_sends, say, session_of, world

FLOW = chain(
    node("hi", "send_message", text="Hello {{ contact_name }}, welcome to Acme."),
    node(
        "plan",
        "ask",
        type="choice",
        variable="plan",
        text="Which plan?",
        options=[{"id": "basic", "title": "Basic"}, {"id": "pro", "title": "Pro"}],
    ),
    node(
        "mail",
        "ask",
        type="email",
        variable="email",
        text="Your e-mail for the {{ plan }} plan?",
        retry_prompt="Please send a valid e-mail address.",
        max_retries=2,
    ),
    node("bye", "send_message", text="Thanks! We will write to {{ email }}."),
    plan="text",
    email="text",
)


async def tap(client: httpx.AsyncClient, w: World, option: str, title: str) -> None:
    """The customer taps a reply button (Meta's interactive button_reply)."""
    payload = copy.deepcopy(load("whatsapp", "interactive_button_reply"))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message |= {"from": "15551230001", "id": "wamid.tap1", "timestamp": str(int(time.time()))}
    message["interactive"]["button_reply"] = {"id": option, "title": title}
    payload["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = "15551230001"
    response = await post(client, WHATSAPP, w.account.id, WHATSAPP._signed(w.account, payload))
    assert response.status_code == 200


@pytest.mark.parametrize("channel", ["whatsapp", "telegram"])
async def test_a_whole_conversation(
    client: httpx.AsyncClient, db: Connection, channel: str
) -> None:
    w = await world(db, channel)
    await make_flow(db, w.org, FLOW, triggers=keyword("hi", "hello"))
    sender = "15551230001" if channel == "whatsapp" else "4242"
    with respx.mock as router:
        sends = mock_sends(router, channel)
        await say(client, w, "Hello", sender=sender)
        if channel == "whatsapp":
            await tap(client, w, "pro", "Pro")
        else:
            await say(client, w, "Pro", sender=sender)  # the keyboard's button sends its text
        await say(client, w, "not an address", sender=sender)
        await say(client, w, "Ann@Example.com", sender=sender)
    bodies = [json.loads(call.request.content) for call in sends.calls]
    assert len(bodies) == 5
    if channel == "whatsapp":
        assert bodies[0]["text"]["body"].startswith("Hello ") and bodies[0]["to"] == sender
        assert bodies[1]["type"] == "interactive"
        assert bodies[1]["interactive"] == {
            "type": "button",
            "body": {"text": "Which plan?"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "basic", "title": "Basic"}},
                    {"type": "reply", "reply": {"id": "pro", "title": "Pro"}},
                ]
            },
        }
        texts = [b["text"]["body"] for b in bodies[2:]]
    else:
        assert all(b["chat_id"] == sender for b in bodies)
        assert bodies[1]["text"] == "Which plan?"
        assert bodies[1]["reply_markup"]["keyboard"] == [[{"text": "Basic"}], [{"text": "Pro"}]]
        texts = [b["text"] for b in bodies[2:]]
    assert texts == [
        "Your e-mail for the pro plan?",
        "Please send a valid e-mail address.",
        "Thanks! We will write to ann@example.com.",
    ]
    session = await session_of(db, w.org)
    assert session["status"] == "completed"
    assert (
        session["variables"]["plan"] == "pro" and session["variables"]["email"] == "ann@example.com"
    )
    stored = await db.fetch(
        "select sender_type::text, status::text, provider_message_id from messages"
        " where direction = 'outbound' order by created_at"
    )
    assert len(stored) == 5 and all(
        r["sender_type"] == "bot" and r["status"] == "sent" for r in stored
    )
