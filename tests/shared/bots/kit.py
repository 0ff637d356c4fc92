"""A bot's world: an organization, a WhatsApp or Telegram account, flows written and
published as the function would, and customers writing through the real webhooks."""

from __future__ import annotations

import copy
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import respx

from shared.bots.gate import forget
from shared.db import Connection
from shared.runtime import Runtime
from tests.channels.kit import Account, Kit, post
from tests.channels.telegram.kit import KIT as TELEGRAM
from tests.channels.whatsapp.kit import KIT as WHATSAPP
from tests.fixtures import load
from tests.support import make_org, make_user

_ids = itertools.count(1)
KITS: dict[str, Kit] = {"whatsapp": WHATSAPP, "telegram": TELEGRAM}


@dataclass
class World:
    org: UUID
    owner: UUID
    account: Account
    kit: Kit


async def world(db: Connection, channel: str = "whatsapp") -> World:
    owner = await make_user(db)
    org = await make_org(db, owner)
    kit = KITS[channel]
    return World(org, owner, await kit.create_account(db, org), kit)


async def make_flow(
    db: Connection,
    org: UUID,
    graph: dict[str, Any],
    *,
    triggers: list[dict[str, Any]] | None = None,
    publish: bool = True,
    timeout_seconds: int = 3600,
) -> UUID:
    flow: UUID = await db.fetchval(
        "insert into public.bot_flows (organization_id, name, draft, triggers, timeout_seconds)"
        " values ($1, 'flow', $2, $3, $4) returning id",
        org,
        graph,
        triggers or [],
        timeout_seconds,
    )
    if publish:
        await publish_draft(db, flow)
    return flow


async def publish_draft(db: Connection, flow: UUID) -> UUID:
    version: UUID = await db.fetchval(
        "insert into public.bot_flow_versions (organization_id, flow_id, version, graph)"
        " select organization_id, id, coalesce((select max(version) from public.bot_flow_versions"
        " where flow_id = $1), 0) + 1, draft from public.bot_flows where id = $1 returning id",
        flow,
    )
    org = await db.fetchval(
        "update public.bot_flows set published_version_id = $2,"
        " published_version = (select version from public.bot_flow_versions where id = $2)"
        " where id = $1 returning organization_id",
        flow,
        version,
    )
    forget(org)  # as shared/bots/flows.publish does in the serving process
    return version


def keyword(*words: str) -> list[dict[str, Any]]:
    return [{"type": "keyword", "keywords": list(words), "match": "exact"}]


async def say(client: httpx.AsyncClient, w: World, text: str, sender: str = "15551230001") -> None:
    """The customer writes through the channel's real webhook (the bot runs after it)."""
    number = next(_ids)
    message_id = f"wamid.in{number}" if w.kit.channel == "whatsapp" else str(number)
    if w.kit.channel == "whatsapp":  # written now, as a live customer does: the window is open
        payload = copy.deepcopy(load("whatsapp", "text_message"))
        value = payload["entry"][0]["changes"][0]["value"]
        value["contacts"][0]["wa_id"] = sender
        value["messages"][0] |= {
            "from": sender,
            "id": message_id,
            "text": {"body": text},
            "timestamp": str(int(time.time())),
        }
        delivery = WHATSAPP._signed(w.account, payload)
    else:
        delivery = w.kit.text_message(w.account, sender=sender, message_id=message_id, text=text)
    response = await post(client, w.kit, w.account.id, delivery)
    assert response.status_code == 200, response.text


def mock_sends(router: respx.MockRouter, channel: str = "whatsapp") -> respx.Route:
    """The provider's send endpoint, answering as it documents a success."""
    if channel == "whatsapp":
        return router.post(url__regex=r"https://graph\.facebook\.com/.*/messages$").mock(
            side_effect=lambda request: httpx.Response(
                200,
                json={
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": "x", "wa_id": "x"}],
                    "messages": [{"id": f"wamid.out{next(_ids)}"}],
                },
            )
        )
    return router.post(url__regex=r"https://api\.telegram\.org/bot.*/send\w+$").mock(
        side_effect=lambda request: httpx.Response(
            200,
            json={
                "ok": True,
                "result": {
                    "message_id": next(_ids),
                    "date": 1700000000,
                    "chat": {"id": 4242, "type": "private"},
                },
            },
        )
    )


def sent_texts(route: respx.Route) -> list[str]:
    texts = []
    for call in route.calls:
        body = json.loads(call.request.content)
        if "text" in body and isinstance(body["text"], dict):
            texts.append(body["text"]["body"])
        elif "interactive" in body:
            texts.append(body["interactive"]["body"]["text"])
        else:
            texts.append(body.get("text"))
    return texts


async def session_of(db: Connection, org: UUID) -> Any:
    return await db.fetchrow(
        "select * from public.bot_sessions where organization_id = $1 order by started_at desc"
        " limit 1",
        org,
    )


async def conversation_of(db: Connection, org: UUID) -> UUID:
    found: UUID = await db.fetchval(
        "select id from public.conversations where organization_id = $1 order by created_at desc"
        " limit 1",
        org,
    )
    return found


async def run_worker(runtime: Runtime) -> None:
    from tests.shared.automation.kit import drain

    await drain(runtime)
