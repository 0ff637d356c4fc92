"""A campaign world for the dispatch tests: one WhatsApp account with an approved
template, contacts, a running campaign; a fake Graph API and a clock tests move."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx

from shared.campaigns.claim import Job, claim_batch, take
from shared.campaigns.dispatch import Campaign, Dispatcher
from shared.campaigns.pace import Clock
from shared.campaigns.runs import due_campaigns
from shared.campaigns.snapshot import start_campaign
from shared.db import Connection
from shared.runtime import Runtime
from tests.channels.whatsapp.kit import WhatsAppKit
from tests.fixtures import load
from tests.support import make_contact, make_org, make_user

GRAPH = "https://graph.facebook.com/v21.0/106540352242922/messages"
T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
GREETING = {"name": "greeting", "language": "en", "body": ["{{ contact.first_name }}"]}


class FakeClock(Clock):
    """Time that moves only when a dispatcher waits: at once to the moment it waits
    for (without yielding, so a send made after the wait sees that moment)."""

    def __init__(self) -> None:
        self.at = T0
        super().__init__(now=lambda: self.at)

    async def until(self, when: datetime) -> None:
        self.at = max(self.at, when)


def provider(
    sent: list[dict[str, Any]], clock: FakeClock | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    """Graph's answer to a send; each request kept with the time it arrived."""

    def reply(request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        to = payload["to"]
        sent.append(payload | {"at": clock.at if clock else T0})
        body = copy.deepcopy(load("whatsapp", "send_text_response"))
        body["contacts"][0] = {"input": to, "wa_id": to}
        body["messages"][0]["id"] = f"wamid.{to}.{len(sent)}"
        return httpx.Response(200, json=body)

    return reply


async def running(
    db: Connection,
    size: int,
    *,
    rate: float | None = None,
    template: dict[str, Any] | None = GREETING,
    text: str | None = None,
    start: bool = True,
) -> dict[str, Any]:
    """An organization with `size` contacts (VIP 0 …) in one campaign, started."""
    org = await make_org(db, await make_user(db))
    account = await WhatsAppKit().create_account(db, org)
    settings = {} if rate is None else {"campaign_rate": rate}
    await db.execute(
        "update public.channel_accounts set settings = $2 where id = $1", account.id, settings
    )
    await db.execute(
        "insert into public.whatsapp_templates (organization_id, channel_account_id, name,"
        " language, category, status, components) values ($1, $2, 'greeting', 'en',"
        " 'MARKETING', 'APPROVED', $3)",
        org,
        account.id,
        [{"type": "BODY", "text": "Hi {{1}}, spring sale!"}],
    )
    contacts = [
        await make_contact(db, org, name=f"VIP{i} Smith", phone=f"+49151000{i:05d}")
        for i in range(size)
    ]
    campaign: UUID = await db.fetchval(
        "insert into public.campaigns (organization_id, channel_account_id, name, template,"
        " body, audience) values ($1, $2, 'Sale', $3, $4, $5) returning id",
        org,
        account.id,
        None if text else template,
        text,
        {"field": "name", "op": "starts_with", "value": "VIP"},
    )
    if start:
        await start_campaign(conn=db, organization_id=org, campaign_id=campaign)
    return {"org": org, "account": account.id, "campaign": campaign, "contacts": contacts}


async def statuses(db: Connection, campaign: UUID) -> dict[str, int]:
    rows = await db.fetch(
        "select status, count(*)::int as n from public.campaign_recipients"
        " where campaign_id = $1 group by status",
        campaign,
    )
    return {r["status"]: r["n"] for r in rows}


async def finish_others(db: Connection) -> None:
    """The module shares one database: campaigns an earlier test left are stopped, so
    a dispatcher sees only the test's own."""
    await db.execute(
        "update public.campaigns set status = 'completed'"
        " where status in ('running', 'scheduled', 'paused')"
    )


async def claim_now(
    runtime: Runtime,
    campaign_id: UUID,
    *,
    limit: int,
    taking: bool = False,
    at: datetime | None = None,
) -> tuple[Campaign, list[Job]]:
    """A dispatcher's claim of up to `limit` recipients (and, `taking`, the take of
    their messages), committed, after which that dispatcher is gone; `at`: the claim's
    time (its claims then never orphaned)."""
    dispatcher = Dispatcher(runtime, batch=limit, clock=Clock())
    async with runtime.db.service_tx() as conn:
        (campaign,) = [c for c in await due_campaigns(conn) if c.id == campaign_id]
    ready = await dispatcher._prepare(campaign)
    async with runtime.db.service_tx() as conn:
        jobs, _ = await claim_batch(
            conn,
            campaign=campaign,
            content=ready.content,
            rate=80,
            limit=limit,
            clock=Clock().now if at is None else lambda: at,
            lead=0,
            orphaned_after=30 if at is None else 86400,
        )
        if taking:
            await take(conn, campaign_id=campaign.id, jobs=jobs, claim_seconds=60)
    return campaign, jobs
