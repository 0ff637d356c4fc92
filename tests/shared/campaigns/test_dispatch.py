"""Dispatch: every recipient sent exactly once under two concurrent dispatchers and
after a dispatcher dies between claim and send; the account's rate cap on a
controllable clock; a WhatsApp messaging limit pauses the campaign."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
import respx

from shared.campaigns.dispatch import Clock, claim, dispatch, due_campaigns
from shared.campaigns.rate import rate_of, reserve
from shared.campaigns.snapshot import start_campaign
from shared.db import Connection
from shared.runtime import Runtime
from tests.channels.whatsapp.kit import WhatsAppKit
from tests.fixtures import load
from tests.support import make_contact, make_org, make_user

GRAPH = "https://graph.facebook.com/v21.0/106540352242922/messages"
T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class FakeClock(Clock):
    def __init__(self) -> None:
        self.at = T0
        super().__init__(now=lambda: self.at, sleep=self._sleep)

    async def _sleep(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def provider(sent: list[tuple[str, datetime]], clock: FakeClock | None = None) -> Any:
    def reply(request: httpx.Request) -> httpx.Response:
        to = json.loads(request.content)["to"]
        sent.append((to, clock.at if clock else T0))
        body = copy.deepcopy(load("whatsapp", "send_text_response"))
        body["contacts"][0] = {"input": to, "wa_id": to}
        body["messages"][0]["id"] = f"wamid.{to}"
        return httpx.Response(200, json=body)

    return reply


async def running(db: Connection, size: int, *, rate: float | None = None) -> dict[str, Any]:
    org = await make_org(db, await make_user(db))
    account = await WhatsAppKit().create_account(db, org)
    if rate is not None:
        await db.execute(
            "update public.channel_accounts"
            " set settings = jsonb_build_object('campaign_rate', $2::float8) where id = $1",
            account.id,
            rate,
        )
    for i in range(size):
        await make_contact(db, org, name=f"VIP {i}", phone=f"+49151000{i:05d}")
    campaign: UUID = await db.fetchval(
        "insert into public.campaigns (organization_id, channel_account_id, name, body, audience)"
        " values ($1, $2, 'Sale', 'Spring sale!', $3) returning id",
        org,
        account.id,
        {"field": "name", "op": "starts_with", "value": "VIP"},
    )
    await start_campaign(conn=db, organization_id=org, campaign_id=campaign)
    return {"org": org, "account": account.id, "campaign": campaign}


async def statuses(db: Connection, campaign: UUID) -> dict[str, int]:
    rows = await db.fetch(
        "select status, count(*)::int as n from public.campaign_recipients"
        " where campaign_id = $1 group by status",
        campaign,
    )
    return {r["status"]: r["n"] for r in rows}


@respx.mock
async def test_two_concurrent_dispatchers_send_each_recipient_once(
    runtime: Runtime, db: Connection
) -> None:
    world = await running(db, 7)
    sent: list[tuple[str, datetime]] = []
    respx.post(GRAPH).mock(side_effect=provider(sent))
    for _ in range(4):
        await asyncio.gather(dispatch(runtime, batch=2), dispatch(runtime, batch=2))
    assert len(sent) == 7
    assert len({to for to, _ in sent}) == 7
    assert await statuses(db, world["campaign"]) == {"sent": 7}
    status = await db.fetchval("select status from campaigns where id = $1", world["campaign"])
    assert status == "completed"
    pmids = await db.fetch(
        "select provider_message_id from campaign_recipients where campaign_id = $1",
        world["campaign"],
    )
    assert all(r["provider_message_id"].startswith("wamid.") for r in pmids)


@respx.mock
async def test_a_dispatcher_killed_after_its_claim_is_resumed_without_a_second_copy(
    runtime: Runtime, db: Connection
) -> None:
    world = await running(db, 4)
    async with runtime.db.service_tx() as conn:
        (campaign,) = [c for c in await due_campaigns(conn) if c.id == world["campaign"]]
        claimed = await claim(conn, campaign, content="Spring sale!", content_type="text", limit=3)
    assert len(claimed) == 3  # ... and the dispatcher dies here, before any send
    sent: list[tuple[str, datetime]] = []
    respx.post(GRAPH).mock(side_effect=provider(sent))
    await dispatch(runtime, batch=10)  # too soon: the claim may still be alive
    assert len(sent) == 1
    await db.execute(
        "update messages set created_at = now() - interval '1 minute'"
        " where metadata ->> 'campaign_id' = $1",
        str(world["campaign"]),
    )
    await dispatch(runtime, batch=10)
    await dispatch(runtime, batch=10)
    assert len(sent) == 4 and len({to for to, _ in sent}) == 4
    assert await statuses(db, world["campaign"]) == {"sent": 4}
    attempts = await db.fetch(
        "select attempts from campaign_recipients where campaign_id = $1", world["campaign"]
    )
    assert [r["attempts"] for r in attempts] == [1, 1, 1, 1]


@respx.mock
async def test_the_rate_cap_holds_on_a_controllable_clock(runtime: Runtime, db: Connection) -> None:
    world = await running(db, 6, rate=2)
    clock = FakeClock()
    sent: list[tuple[str, datetime]] = []
    respx.post(GRAPH).mock(side_effect=provider(sent, clock))
    await dispatch(runtime, batch=6, clock=clock)
    times = [at for _, at in sent]
    assert times == [T0 + timedelta(seconds=0.5 * i) for i in range(6)]
    peak = max(
        sum(1 for t in times if start <= t < start + timedelta(seconds=1)) for start in times
    )
    assert peak == 2
    # a second dispatcher's slots come after the first's, never beside them
    async with runtime.db.service_tx() as conn:
        later = await reserve(
            conn=conn, channel_account_id=world["account"], count=2, rate=2, now=T0
        )
    assert later == [T0 + timedelta(seconds=3), T0 + timedelta(seconds=3.5)]


def test_rates_per_channel_and_the_whatsapp_ceiling() -> None:
    assert rate_of(channel="whatsapp", settings={}) == 80
    assert rate_of(channel="whatsapp", settings={"campaign_rate": 5000}) == 1000
    assert rate_of(channel="whatsapp", settings={"campaign_rate": "fast"}) == 80
    assert rate_of(channel="sms", settings={"campaign_rate": 50}) == 1
    assert rate_of(channel="telegram", settings={}) == 30


@respx.mock
@pytest.mark.parametrize(("code", "paused"), [(131048, True), (131047, False)])
async def test_the_messaging_limit_pauses_the_campaign(
    runtime: Runtime, db: Connection, code: int, paused: bool
) -> None:
    world = await running(db, 3)
    error = copy.deepcopy(load("whatsapp", "error_pair_rate_limited"))
    error["error"]["code"] = code
    respx.post(GRAPH).mock(return_value=httpx.Response(400, json=error))
    counts = await dispatch(runtime, batch=3)
    row = await db.fetchrow(
        "select status, pause_reason from campaigns where id = $1", world["campaign"]
    )
    if paused:
        assert counts["paused"] == 1 and counts["failed"] == 1
        assert row["status"] == "paused" and "131048" in row["pause_reason"]
    else:
        assert row["status"] == "running" and counts["failed"] == 3
    # the refusal is each failed recipient's log: its code and text, and when
    failed = await db.fetch(
        "select error, failed_at, attempts from campaign_recipients"
        " where campaign_id = $1 and status = 'failed'",
        world["campaign"],
    )
    assert len(failed) == counts["failed"]
    assert all(
        str(code) in str(r["error"]) and r["failed_at"] and r["attempts"] == 1 for r in failed
    )


@respx.mock
async def test_the_cron_function_sends_and_broadcasts_one_progress_event_per_batch(
    client: httpx.AsyncClient, settings: Any, db: Connection
) -> None:
    world = await running(db, 3)
    sent: list[tuple[str, datetime]] = []
    respx.post(GRAPH).mock(side_effect=provider(sent))
    assert (await client.post("/functions/v1/campaign-dispatch")).status_code == 401
    service = {"Authorization": f"Bearer {settings.service_key}"}
    answer = await client.post("/functions/v1/campaign-dispatch?batch=2&seconds=0", headers=service)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"sent": 2, "failed": 0, "paused": 0}
    events = await db.fetch(
        "select payload from realtime.messages where topic = $1 and event = 'campaign.progress'",
        f"org:{world['org']}:inbox",
    )
    assert len(events) == 1
    payload = events[0]["payload"]
    payload = json.loads(payload) if isinstance(payload, str) else payload
    assert payload["counts"]["sent"] == 2 and payload["counts"]["queued"] == 1
    assert payload["campaign_id"] == str(world["campaign"])
    # within its time, a call sends batch after batch until nothing is left
    rest = await client.post("/functions/v1/campaign-dispatch?batch=2", headers=service)
    assert rest.json() == {"sent": 1, "failed": 0, "paused": 0}
    assert len(sent) == 3


@respx.mock
async def test_a_scheduled_campaign_starts_when_due(runtime: Runtime, db: Connection) -> None:
    org = await make_org(db, await make_user(db))
    account = await WhatsAppKit().create_account(db, org)
    await make_contact(db, org, name="VIP later", phone="+4915100099999")
    campaign = await db.fetchval(
        "insert into campaigns (organization_id, channel_account_id, name, body, audience,"
        " status, starts_at) values ($1, $2, 'Later', 'Hi', $3, 'scheduled', $4) returning id",
        org,
        account.id,
        {"field": "name", "op": "eq", "value": "VIP later"},
        T0 + timedelta(minutes=5),
    )
    sent: list[tuple[str, datetime]] = []
    respx.post(GRAPH).mock(side_effect=provider(sent))
    clock = FakeClock()
    await dispatch(runtime, clock=clock)
    assert sent == [] and await statuses(db, campaign) == {}
    clock.at += timedelta(minutes=5)
    await dispatch(runtime, clock=clock)
    assert [to for to, _ in sent] == ["+4915100099999"]
    assert await statuses(db, campaign) == {"sent": 1}
