"""send-message with a WhatsApp template: how a conversation is reopened outside the
24-hour window. Checked against the stored template before WhatsApp is called."""

from __future__ import annotations

import json
from typing import Any

import httpx
import respx

from shared.db import Connection
from shared.settings import Settings
from tests.fixtures import load
from tests.functions.test_send_message import GRAPH, send
from tests.functions.test_send_message import setup as conversation_world

IMAGE = {"type": "image", "link": "https://cdn.example.com/box.jpg"}


async def with_templates(db: Connection, world: dict[str, Any]) -> None:
    for graph in (
        load("whatsapp", "templates_page_1")["data"] + load("whatsapp", "templates_page_2")["data"]
    ):
        await db.execute(
            "insert into whatsapp_templates (organization_id, channel_account_id, name,"
            " language, category, status, parameter_format, components)"
            " values ($1, $2, $3, $4, $5, $6, $7, $8)",
            world["org"],
            world["account"].id,
            graph["name"],
            graph["language"],
            graph["category"],
            graph["status"],
            graph["parameter_format"],
            graph["components"],
        )


def template(**fields: Any) -> dict[str, Any]:
    return {"name": "order_update", "language": "en_US", "header": IMAGE} | fields


@respx.mock
async def test_outside_the_window_text_is_refused_and_an_approved_template_is_sent(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await conversation_world(db, "whatsapp", hours_since_inbound=48)
    await with_templates(db, world)
    route = respx.post(GRAPH).mock(
        return_value=httpx.Response(200, json=load("whatsapp", "send_text_response"))
    )
    text = await send(client, settings, world)
    assert text.status_code == 422
    assert text.json()["error"]["code"] == "outside_window"
    assert "24-hour" in text.json()["error"]["message"]

    sent = await send(
        client, settings, world, text=None, template=template(body=["Kerry", "A-1001"])
    )
    assert sent.status_code == 201, sent.text
    assert json.loads(route.calls.last.request.content) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": world["to"],
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [
                {
                    "type": "header",
                    "parameters": [{"type": "image", "image": {"link": IMAGE["link"]}}],
                },
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Kerry"},
                        {"type": "text", "text": "A-1001"},
                    ],
                },
            ],
        },
    }
    message = await db.fetchrow("select content_type::text, body, status::text from messages")
    assert dict(message) == {
        "content_type": "template",
        "body": "Hi Kerry, your order A-1001 ships today.",
        "status": "sent",
    }


@respx.mock
async def test_a_template_that_does_not_fit_is_refused_before_whatsapp_is_called(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await conversation_world(db, "whatsapp", hours_since_inbound=48)
    await with_templates(db, world)
    route = respx.post(GRAPH)
    cases = [
        (template(body=["Kerry"]), "template_parameters", "2 variable(s), 1 value(s)"),
        (template(header=None, body=["Kerry", "A"]), "template_parameters", "header is image"),
        (
            template(
                name="welcome_back", language="en", header={"first_name": "K"}, body={"x": "y"}
            ),
            "template_parameters",
            "missing ['first_name', 'plan']",
        ),
        (
            template(name="spring_sale", header=None, body=["20%"]),
            "template_not_approved",
            "REJECTED",
        ),
        (template(name="no_such_template"), "unknown_template", "no_such_template"),
    ]
    for body, code, words in cases:
        response = await send(client, settings, world, text=None, template=body)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert (error["code"], words in error["message"]) == (code, True), error
    both = await send(client, settings, world, template=template(body=["K", "A"]))
    assert both.status_code == 422  # text and a template together
    assert not route.called
    assert await db.fetchval("select count(*) from messages") == 0


async def test_templates_are_whatsapps(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    world = await conversation_world(db, "telegram")
    response = await send(client, settings, world, text=None, template=template(body=["K", "A"]))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "templates_not_supported"
    assert await db.fetchval("select count(*) from messages") == 0
