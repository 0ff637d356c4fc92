"""SLA clocks driven by the events worker: a signed WhatsApp message starts the first
response clock, an agent's reply through send-message meets it, a late reply or the
sweep breaches it and `sla.breached` is emitted once. Time moves by backdating what
the database recorded and by the sweep's `now`, never by sleeping."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx

from shared.db import Connection
from shared.events import worker
from shared.events.base import RELEASED, Claimed, Event
from shared.runtime import Runtime
from shared.settings import Settings
from shared.sla.clocks import apply_sla_policy, sla_state
from shared.sla.consumer import SlaConsumer, apply_event, sweep
from tests.channels.kit import post
from tests.channels.whatsapp.kit import WhatsAppKit
from tests.fixtures import load
from tests.functions.webhooks_kit import HOOK, endpoint, public_dns, verified
from tests.support import auth, make_org, make_user, member

KIT = WhatsAppKit()
GRAPH = "https://graph.facebook.com/v21.0/106540352242922/messages"
BERLIN = ZoneInfo("Europe/Berlin")
ALL = ("first_response", "next_response", "resolution")


async def policy(db: Connection, org: UUID, **columns: Any) -> UUID:
    values = {"name": "Standard", "is_default": True, "first_response_seconds": 3600, **columns}
    names = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(2, len(values) + 2))
    made: UUID = await db.fetchval(
        f"insert into sla_policies (organization_id, {names}) values ($1, {params}) returning id",
        org,
        *values.values(),
    )
    return made


@pytest.fixture
async def world(db: Connection) -> dict[str, Any]:
    owner = await make_user(db)
    org = await make_org(db, owner)
    account = await KIT.create_account(db, org)
    return {"org": org, "agent": await member(db, org, "agent"), "account": account}


async def contact_writes(
    client: httpx.AsyncClient, db: Connection, world: dict[str, Any], n: int = 1
) -> UUID:
    message = KIT.text_message(
        world["account"], sender="351912345678", message_id=f"wamid.S{n}", text="Hello?"
    )
    assert (await post(client, KIT, world["account"].id, message)).status_code == 200
    # the fixture's message is old: the provider's 24-hour reply window is open now
    await db.execute("update conversations set last_inbound_at = now()")
    found: UUID = await db.fetchval(
        "select conversation_id from messages order by created_at desc limit 1"
    )
    return found


async def agent_replies(
    client: httpx.AsyncClient, settings: Settings, world: dict[str, Any], conversation: UUID
) -> None:
    with respx.mock:
        respx.post(GRAPH).respond(200, json=load("whatsapp", "send_text_response"))
        answer = await client.post(
            "/functions/v1/send-message",
            json={"conversation_id": str(conversation), "text": "Here to help"},
            headers=auth(settings, world["agent"]),
        )
    assert answer.status_code == 201, answer.text


async def backdate(db: Connection, hours: float) -> None:
    """What is waiting in the outbox happened `hours` earlier."""
    await db.execute(
        "update outbox_events set created_at = created_at - $1::interval"
        " where processed_at is null",
        timedelta(hours=hours),
    )


async def happened_at(db: Connection, moment: datetime) -> None:
    await db.execute("update outbox_events set created_at = $1 where processed_at is null", moment)


def event_of(row: Any) -> Event:
    """An outbox row as the worker hands it to consumers."""
    return Event(
        id=row["id"],
        organization_id=row["organization_id"],
        type=row["event_type"],
        aggregate_id=row["aggregate_id"],
        payload=row["payload"],
        created_at=row["created_at"],
    )


async def breaches(db: Connection) -> list[dict[str, Any]]:
    rows = await db.fetch("select payload from outbox_events where event_type = 'sla.breached'")
    return [r["payload"] for r in rows]


async def clocks_of(
    db: Connection, conversation: UUID, kinds: tuple[str, ...] = ("first_response",)
) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "select kind, outcome, due_at, started_at, stopped_at, breached_at, wall_seconds,"
        " business_seconds from sla_clocks where conversation_id = $1 and kind = any($2)"
        " order by id",
        conversation,
        kinds,
    )
    return [dict(r) for r in rows]


async def test_an_agent_reply_in_time_meets_the_first_response(
    client: httpx.AsyncClient, settings: Settings, runtime: Runtime, db: Connection, world
):
    await policy(db, world["org"], resolution_seconds=86400)
    conversation = await contact_writes(client, db, world)
    await worker.run(runtime)
    first, resolution = await clocks_of(db, conversation, ALL)
    assert (first["kind"], first["outcome"], resolution["kind"]) == (
        "first_response",
        None,
        "resolution",
    )
    assert first["due_at"] == first["started_at"] + timedelta(hours=1)

    await agent_replies(client, settings, world, conversation)
    await worker.run(runtime)
    first, resolution = await clocks_of(db, conversation, ALL)
    assert first["outcome"] == "met" and first["breached_at"] is None
    assert first["wall_seconds"] == first["business_seconds"] < 60
    assert resolution["stopped_at"] is None
    # the contact writes again: a next-response clock, the first is not started again
    await contact_writes(client, db, world, 2)
    await worker.run(runtime)
    kinds = [(c["kind"], c["outcome"]) for c in await clocks_of(db, conversation, ALL)]
    assert kinds == [("first_response", "met"), ("resolution", None), ("next_response", None)]
    # resolving stops the resolution clock and cancels the unanswered response
    await db.execute("update conversations set status = 'resolved' where id = $1", conversation)
    await worker.run(runtime)
    outcomes = [(c["kind"], c["outcome"]) for c in await clocks_of(db, conversation, ALL)]
    assert outcomes == [
        ("first_response", "met"),
        ("resolution", "met"),
        ("next_response", "cancelled"),
    ]
    # reopened: a new resolution clock; the contact's message then waits for a next response
    await db.execute("update conversations set status = 'open' where id = $1", conversation)
    await worker.run(runtime)
    await contact_writes(client, db, world, 3)
    await worker.run(runtime)
    running = [c["kind"] for c in await clocks_of(db, conversation, ALL) if c["outcome"] is None]
    assert running == ["resolution", "next_response"]
    assert await breaches(db) == []


async def test_an_event_is_applied_once_and_an_account_default_wins(
    client: httpx.AsyncClient, runtime: Runtime, db: Connection, world
):
    await policy(db, world["org"])
    mine = await policy(
        db, world["org"], first_response_seconds=60, channel_account_id=world["account"].id
    )
    conversation = await contact_writes(client, db, world)
    (event,) = await db.fetch("select * from outbox_events where event_type = 'message.received'")
    await worker.run(runtime)
    (first,) = await clocks_of(db, conversation)
    assert first["due_at"] - first["started_at"] == timedelta(seconds=60)
    assert (
        await db.fetchval(
            "select policy_id from conversation_sla where conversation_id = $1", conversation
        )
        == mine
    )
    # the same event handled again (a worker died before recording it) changes nothing
    again = event_of(event)
    await db.execute("update sla_clocks set stopped_at = now(), outcome = 'met'")
    async with db.transaction():
        await apply_event(db, again)
    assert len(await clocks_of(db, conversation, ALL)) == 2


async def test_a_late_reply_breaches_once(
    client: httpx.AsyncClient, settings: Settings, runtime: Runtime, db: Connection, world
):
    chosen = await policy(db, world["org"])
    conversation = await contact_writes(client, db, world)
    await backdate(db, 2)  # the message came two hours ago; the target is one hour
    await worker.run(runtime)
    await agent_replies(client, settings, world, conversation)
    await worker.run(runtime)
    (first,) = await clocks_of(db, conversation)
    assert first["outcome"] == "breached" and first["breached_at"] == first["due_at"]
    assert 7190 < first["wall_seconds"] < 7260
    (breach,) = await breaches(db)
    assert breach["conversation_id"] == str(conversation)
    assert (breach["kind"], breach["policy_id"]) == ("first_response", str(chosen))
    # neither a second worker run nor the sweep announces it again
    await worker.run(runtime)
    assert await sweep(runtime, now=datetime.now(UTC) + timedelta(days=1)) == {"breached": 0}
    assert len(await breaches(db)) == 1


async def test_the_sweep_breaches_a_waiting_conversation_once_and_webhooks_carry_it(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    world,
    monkeypatch: pytest.MonkeyPatch,
):
    public_dns(monkeypatch)
    admins = {"org": world["org"], "admin": await member(db, world["org"], "admin")}
    hook = await endpoint(client, settings, admins, HOOK, ["sla.breached"])
    await policy(db, world["org"])
    conversation = await contact_writes(client, db, world)
    await worker.run(runtime)
    now = datetime.now(UTC)
    assert await sweep(runtime, now=now + timedelta(minutes=59)) == {"breached": 0}
    assert await sweep(runtime, now=now + timedelta(minutes=61)) == {"breached": 1}
    assert await sweep(runtime, now=now + timedelta(minutes=62)) == {"breached": 0}
    with respx.mock:
        route = respx.post(HOOK).respond(204)
        await worker.run(runtime)
        await worker.run(runtime)
    (call,) = route.calls
    body = verified(hook["secret"], call.request)
    assert body["type"] == "sla.breached"
    assert (body["data"]["conversation_id"], body["data"]["kind"]) == (
        str(conversation),
        "first_response",
    )
    # the reply that comes later does not announce the breach again
    await agent_replies(client, settings, world, conversation)
    await worker.run(runtime)
    (first,) = await clocks_of(db, conversation)
    assert first["outcome"] == "breached"
    assert len(await breaches(db)) == 1
    service = {"Authorization": f"Bearer {settings.service_key}"}
    answer = await client.post("/functions/v1/sla-sweep", headers=service)
    assert answer.json() == {"breached": 0}
    assert (await client.post("/functions/v1/sla-sweep")).status_code == 401


async def test_business_hours_only_skips_the_weekend(runtime: Runtime, db: Connection, world):
    org, account = world["org"], world["account"].id
    await db.execute(
        "insert into business_hours (organization_id, name, timezone, weekly) values ($1, 'Office',"
        " 'Europe/Berlin', $2)",
        org,
        {d: [{"start": "09:00", "end": "17:00"}] for d in ("mon", "tue", "wed", "thu", "fri")},
    )
    await policy(db, org, first_response_seconds=7200, business_hours_only=True)
    contact = await db.fetchval(
        "insert into contacts (organization_id, name) values ($1, 'Kim') returning id", org
    )
    conversation = await db.fetchval(
        "insert into conversations (organization_id, contact_id, channel_account_id)"
        " values ($1, $2, $3) returning id",
        org,
        contact,
        account,
    )
    friday = datetime(2026, 12, 4, 16, 0, tzinfo=BERLIN)
    monday = datetime(2026, 12, 7, 9, 30, tzinfo=BERLIN)
    await db.execute(
        "insert into messages (organization_id, conversation_id, channel_account_id, direction,"
        " sender_type, body, status, created_at) values ($1, $2, $3, 'inbound', 'contact', 'Hi',"
        " 'received', $4)",
        org,
        conversation,
        account,
        friday,
    )
    await happened_at(db, friday)
    await worker.run(runtime)
    (first,) = await clocks_of(db, conversation)
    # one hour on Friday, the weekend closed, one more on Monday from 09:00
    assert first["due_at"] == datetime(2026, 12, 7, 10, 0, tzinfo=BERLIN)
    await db.execute(
        "insert into messages (organization_id, conversation_id, channel_account_id, direction,"
        " sender_type, sender_id, body, status, created_at, sent_at) values ($1, $2, $3,"
        " 'outbound', 'user', $4, 'Hello', 'sent', $5, $5)",
        org,
        conversation,
        account,
        world["agent"],
        monday,
    )
    await happened_at(db, monday)
    await worker.run(runtime)
    (first,) = await clocks_of(db, conversation)
    assert first["outcome"] == "met"
    assert first["business_seconds"] == 90 * 60
    assert first["wall_seconds"] == int((monday - friday).total_seconds())

    # automation moves it to a stricter policy: the due time follows
    await db.execute("delete from sla_clocks where conversation_id = $1", conversation)
    await db.execute(
        "insert into sla_clocks (organization_id, conversation_id, kind, business_hours_only,"
        " started_at) values ($1, $2, 'first_response', false, $3)",
        org,
        conversation,
        friday,
    )
    strict = await policy(
        db, org, is_default=False, first_response_seconds=1800, business_hours_only=True
    )
    state = await apply_sla_policy(
        conn=db, organization_id=org, conversation_id=conversation, policy_id=strict
    )
    assert state["policy_id"] == strict
    assert state["running"]["first_response"]["due_at"] == datetime(
        2026, 12, 4, 16, 30, tzinfo=BERLIN
    )
    other = await make_org(db, await make_user(db))
    with pytest.raises(Exception, match="No such SLA policy"):
        await apply_sla_policy(
            conn=db, organization_id=other, conversation_id=conversation, policy_id=strict
        )
    with pytest.raises(Exception, match="No such conversation"):
        await sla_state(conn=db, organization_id=other, conversation_id=conversation)


async def test_deliveries_past_the_lease_are_released_untouched(
    client: httpx.AsyncClient, runtime: Runtime, db: Connection, world
):
    await policy(db, world["org"])
    conversation = await contact_writes(client, db, world)
    (event,) = await db.fetch("select * from outbox_events where event_type = 'message.received'")
    claimed = Claimed(
        id=1,
        consumer="sla",
        target=None,
        attempt=1,
        claim=uuid4(),
        event=event_of(event),
    )
    consumer = SlaConsumer()
    now = datetime.now(UTC)
    late = await consumer.handle(
        runtime=runtime, deliveries=[claimed], now=now, deadline=time.monotonic() - 1
    )
    assert late == [RELEASED] and await clocks_of(db, conversation, ALL) == []
    done = await consumer.handle(
        runtime=runtime, deliveries=[claimed], now=now, deadline=time.monotonic() + 30
    )
    assert [r.status for r in done] == ["done"] and len(await clocks_of(db, conversation, ALL)) == 2
