"""send-message with the organization's text template (`text_template`): filled on the
server with the contact, the agent and the request's own values; an unknown template
or a missing value is a 422 before any provider call, and nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from shared.db import Connection
from shared.settings import Settings
from tests.fixtures import load
from tests.functions.test_send_message import GRAPH, send
from tests.functions.test_send_message import setup as conversation_world


async def world_with_templates(db: Connection) -> dict[str, Any]:
    world = await conversation_world(db, "whatsapp")
    await db.execute("update profiles set full_name = 'Sam Agent' where id = $1", world["agent"])
    world["template"] = await db.fetchval(
        "insert into text_templates (organization_id, name, body) values ($1, 'thanks',"
        " 'Thanks {{ contact.name }}! {{ agent.name }} here; code {{ values.code }}.')"
        " returning id",
        world["org"],
    )
    await db.execute(
        "insert into text_templates (organization_id, name, body) values ($1, 'plan',"
        " 'Your plan: {{ contact.custom.plan }}')",
        world["org"],
    )
    return world


@respx.mock
async def test_a_text_template_is_filled_on_the_server_and_sent(
    client: httpx.AsyncClient, settings: Settings, db: Connection
) -> None:
    world = await world_with_templates(db)

    def reply(request: httpx.Request) -> httpx.Response:
        answer = load("whatsapp", "send_text_response")
        answer["messages"][0]["id"] = f"wamid.{len(route.calls)}"
        return httpx.Response(200, json=answer)

    route = respx.post(GRAPH).mock(side_effect=reply)
    by_id = {"id": str(world["template"]), "values": {"code": "SPRING"}}
    answer = await send(client, settings, world, text=None, text_template=by_id)
    assert answer.status_code == 201, answer.text
    filled = "Thanks Kerry! Sam Agent here; code SPRING."
    assert answer.json()["body"] == filled
    assert json.loads(route.calls.last.request.content)["text"]["body"] == filled
    by_name = {"name": "thanks", "values": {"code": 7}}
    again = await send(client, settings, world, text=None, text_template=by_name)
    assert again.status_code == 201, again.text
    assert again.json()["body"] == "Thanks Kerry! Sam Agent here; code 7."


@respx.mock
@pytest.mark.parametrize(
    ("text_template", "problem"),
    [
        ({"name": "nope"}, "unknown_text_template"),
        ({"name": "thanks"}, "template_variable_missing"),  # values.code not given
        ({"name": "plan"}, "template_variable_missing"),  # the contact has no plan
        ({"name": "thanks", "id": "00000000-0000-0000-0000-000000000001"}, "not both"),
    ],
)
async def test_a_bad_text_template_is_a_422_before_any_provider_call(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    text_template: dict[str, Any],
    problem: str,
) -> None:
    world = await world_with_templates(db)
    route = respx.post(GRAPH).mock(
        return_value=httpx.Response(200, json=load("whatsapp", "send_text_response"))
    )
    answer = await send(client, settings, world, text=None, text_template=text_template)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert problem in f"{error['code']} {error['message']} {error.get('details')}"
    assert not route.called
    assert await db.fetchval("select count(*) from messages where direction = 'outbound'") == 0
