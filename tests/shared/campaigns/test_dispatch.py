"""Dispatch: every recipient sent exactly once under concurrent dispatchers and after
a dispatcher dies between its claim and its sends (or while sending); the account's
rate cap on a controllable clock; a WhatsApp messaging limit pauses the campaign.

One database for the module (each test its own organization and campaign)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
import respx

from shared.campaigns import dispatch as dispatching
from shared.campaigns.pace import Window
from shared.campaigns.rate import SCHEDULE_SHARE, rate_of, reserve
from shared.campaigns.runs import dispatch, run
from shared.db import Connection
from shared.runtime import Runtime
from shared.tooling.gateway import Gateway
from tests.fixtures import load
from tests.shared.billing.kit import put_on_plan
from tests.shared.campaigns.kit import (
    GRAPH,
    T0,
    FakeClock,
    claim_now,
    finish_others,
    provider,
    running,
    statuses,
)
from tests.support import make_contact, module_runtime_fixtures

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.xdist_group("test_campaign_dispatch"),
]
runtime, db = module_runtime_fixtures()


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def _alone(db: Connection) -> None:
    await finish_others(db)


@respx.mock
async def test_concurrent_dispatchers_send_each_recipient_once_with_its_own_values(
    runtime: Runtime, db: Connection
) -> None:
    world = await running(db, 9)
    sent: list[dict[str, Any]] = []
    respx.post(GRAPH).mock(side_effect=provider(sent))
    await asyncio.gather(*(run(runtime, batch=2, seconds=5) for _ in range(3)))
    assert sorted(s["to"] for s in sent) == [f"+49151000{i:05d}" for i in range(9)]
    first_names = {s["to"]: s["template"]["components"][0]["parameters"][0]["text"] for s in sent}
    assert first_names["+4915100000004"] == "VIP4"
    assert await statuses(db, world["campaign"]) == {"sent": 9}
    status = await db.fetchval("select status from campaigns where id = $1", world["campaign"])
    assert status == "completed"
    rows = await db.fetch(
        "select r.provider_message_id, r.attempts, m.body, m.status::text as status"
        " from campaign_recipients r join messages m on m.id = r.message_id"
        " where r.campaign_id = $1",
        world["campaign"],
    )
    assert all(r["provider_message_id"].startswith("wamid.") for r in rows)
    assert {r["attempts"] for r in rows} == {1} and {r["status"] for r in rows} == {"sent"}
    assert "Hi VIP4, spring sale!" in {r["body"] for r in rows}


@respx.mock
async def test_a_dispatcher_killed_after_its_claim_is_resumed_without_a_second_copy(
    runtime: Runtime, db: Connection
) -> None:
    world = await running(db, 5)
    # a dispatcher dies before taking its messages; another dies mid-send (it may have sent)
    _, claimed = await claim_now(runtime, world["campaign"], limit=2)
    _, in_flight = await claim_now(runtime, world["campaign"], limit=2, taking=True)
    assert len(claimed) == len(in_flight) == 2
    sent: list[dict[str, Any]] = []
    respx.post(GRAPH).mock(side_effect=provider(sent))
    await dispatch(runtime, batch=10)  # too soon: the first one's claim may still be alive
    assert len(sent) == 1
    await db.execute(
        "update campaign_recipients set slot_at = slot_at - interval '1 minute'"
        " where campaign_id = $1",
        world["campaign"],
    )
    await dispatch(runtime, batch=10)
    await dispatch(runtime, batch=10)
    unclaimed = {j.address for j in in_flight}
    assert len(sent) == 3 and not unclaimed & {s["to"] for s in sent}
    assert await statuses(db, world["campaign"]) == {"sent": 3, "sending": 2}
    attempts = await db.fetch(
        "select attempts from campaign_recipients where campaign_id = $1", world["campaign"]
    )
    assert [r["attempts"] for r in attempts] == [1] * 5


@respx.mock
async def test_the_rate_cap_holds_on_a_controllable_clock(
    runtime: Runtime, db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await running(db, 6, rate=2)
    clock = FakeClock()
    sent: list[dict[str, Any]] = []
    respx.post(GRAPH).mock(side_effect=provider(sent, clock))
    monkeypatch.setattr(dispatching, "BATCH_SPAN", 3)  # one batch of 6 (3 s at 2/s)
    await dispatch(runtime, batch=6, clock=clock)
    times = [s["at"] for s in sent]
    step = timedelta(seconds=1 / (2 * SCHEDULE_SHARE))
    start = T0 + timedelta(seconds=2 * dispatching.LEAD)
    assert times == [start + step * i for i in range(6)]
    second = timedelta(seconds=1)
    assert max(sum(1 for t in times if at <= t < at + second) for at in times) == 2
    # a second dispatcher's slots come after the first's, never beside them
    async with runtime.db.service_tx() as conn:
        later = await reserve(
            conn=conn, channel_account_id=world["account"], count=2, rate=2, now=T0
        )
    assert later == [start + step * 6, start + step * 7]


async def test_rates_per_channel_and_the_whatsapp_ceiling() -> None:
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
    counts = await dispatch(runtime, batch=3, clock=FakeClock())
    row = await db.fetchrow(
        "select status, pause_reason from campaigns where id = $1", world["campaign"]
    )
    log = await db.fetch(
        "select status, error, failed_at, attempts, message_id from campaign_recipients"
        " where campaign_id = $1 order by id",
        world["campaign"],
    )
    if paused:  # the sends after the refusal are not made: queued again for a resume
        assert counts == {"sent": 0, "failed": 1, "paused": 1}
        assert row["status"] == "paused" and "131048" in row["pause_reason"]
        assert [r["status"] for r in log] == ["failed", "queued", "queued"]
        assert [(r["attempts"], r["message_id"]) for r in log[1:]] == [(0, None)] * 2
    else:
        assert row["status"] == "completed" and counts["failed"] == 3
    # the refusal is each failed recipient's log: its code and text, and when
    failed = [r for r in log if r["status"] == "failed"]
    assert len(failed) == counts["failed"] == len(respx.calls)
    assert all(
        str(code) in str(r["error"]) and r["failed_at"] and r["attempts"] == 1 for r in failed
    )


@pytest_asyncio.fixture(loop_scope="module")
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=Gateway(runtime.settings, runtime=runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:54321") as c:
        yield c


@respx.mock
async def test_the_cron_function_sends_and_broadcasts_progress(
    client: httpx.AsyncClient, runtime: Runtime, db: Connection
) -> None:
    world = await running(db, 3)
    sent: list[dict[str, Any]] = []
    respx.post(GRAPH).mock(side_effect=provider(sent))
    assert (await client.post("/functions/v1/campaign-dispatch")).status_code == 401
    service = {"Authorization": f"Bearer {runtime.settings.service_key}"}
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
    world = await running(db, 0, start=False)
    await make_contact(db, world["org"], name="VIP later", phone="+4915100099999")
    await db.execute(
        "update campaigns set status = 'scheduled', starts_at = $2 where id = $1",
        world["campaign"],
        T0 + timedelta(minutes=5),
    )
    sent: list[dict[str, Any]] = []
    respx.post(GRAPH).mock(side_effect=provider(sent))
    clock = FakeClock()
    await dispatch(runtime, clock=clock)
    assert sent == [] and await statuses(db, world["campaign"]) == {}
    clock.at += timedelta(minutes=5)
    await dispatch(runtime, clock=clock)
    assert [s["to"] for s in sent] == ["+4915100099999"]
    assert await statuses(db, world["campaign"]) == {"sent": 1}


async def test_a_plan_out_of_messages_pauses_its_campaign_and_not_the_run(
    runtime: Runtime, db: Connection
) -> None:
    broke, fine = await running(db, 2), await running(db, 2)
    await put_on_plan(db, broke["org"], limits={"outbound_messages_per_period": 1})
    sent: list[dict[str, Any]] = []
    with respx.mock:
        respx.post(GRAPH).mock(side_effect=provider(sent))
        counts = await dispatch(runtime, batch=2, clock=FakeClock())
    row = await db.fetchrow(
        "select status, pause_reason from campaigns where id = $1", broke["campaign"]
    )
    assert row["status"] == "paused" and row["pause_reason"].startswith("plan_limit")
    assert await statuses(db, broke["campaign"]) == {"queued": 2}  # nothing half-sent
    assert await statuses(db, fine["campaign"]) == {"sent": 2}
    assert counts["paused"] == 1 and len(sent) == 2


@respx.mock
async def test_no_batch_is_claimed_while_the_process_sends_lag_their_slots(
    runtime: Runtime, db: Connection
) -> None:
    world = await running(db, 3, rate=10)
    respx.post(GRAPH).mock(side_effect=provider([]))
    window = Window.of(world["account"], 10)
    window.due = 6  # more than BEHIND (0.5 s) of the cap past their slots, unsent
    try:
        assert await dispatch(runtime, batch=3, clock=FakeClock()) == {
            "sent": 0,
            "failed": 0,
            "paused": 0,
        }
        assert await statuses(db, world["campaign"]) == {"queued": 3}
    finally:
        window.due = 0
    # caught up: a batch (a quarter second of the cap) is claimed and sent
    assert (await dispatch(runtime, batch=3, clock=FakeClock()))["sent"] == 2
