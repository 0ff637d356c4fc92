"""Deliveries that arrive together share one transaction (pipeline.receive_batch),
for every channel: each still gets its own answer, and one that fails, fails alone;
and their senders are locked once, in one order."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from shared.channels.base import Account as ChannelAccount
from shared.channels.base import InboundMessage, Sender, WebhookRequest
from shared.channels.registry import CHANNELS
from shared.db import Connection, Database
from shared.inbox import pipeline
from shared.runtime import Runtime
from tests.channels.kit import Account, Kit, counts, post
from tests.channels.whatsapp.kit import WhatsAppKit
from tests.support import make_org, make_user

SENDER = "16315550003"
TEXTS = ("msg-first", "msg-second", "msg-third", "msg-fourth")


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One call in flight at a time, held until four deliveries are prepared, so the
    first goes alone and the three behind it leave together; the sizes of the calls."""
    monkeypatch.setattr(pipeline, "IN_FLIGHT", 1)
    sizes: list[int] = []
    prepared = 0
    all_prepared = asyncio.Event()
    prepare, receive_batch = pipeline.prepare, pipeline.receive_batch

    def counting_prepare(*args: Any, **kwargs: Any) -> Any:
        nonlocal prepared
        delivery = prepare(*args, **kwargs)
        prepared += 1
        if prepared == 4:
            all_prepared.set()
        return delivery

    async def held_receive_batch(db: Database, deliveries: list[dict[str, Any]]) -> Any:
        sizes.append(len(deliveries))
        await all_prepared.wait()
        return await receive_batch(db, deliveries)

    monkeypatch.setattr(pipeline, "prepare", counting_prepare)
    monkeypatch.setattr(pipeline, "receive_batch", held_receive_batch)
    return sizes


async def deliver_four(client: httpx.AsyncClient, kit: Kit, account: Account) -> list[int]:
    deliveries = [
        kit.text_message(account, sender=SENDER, message_id=f"70{n}", text=text)
        for n, text in enumerate(TEXTS)
    ]
    first = asyncio.ensure_future(post(client, kit, account.id, deliveries[0]))
    await asyncio.sleep(0)  # on its way before the others
    rest = [post(client, kit, account.id, delivery) for delivery in deliveries[1:]]
    answers = await asyncio.gather(first, *rest)
    return [answer.status_code for answer in answers]


async def test_deliveries_behind_a_call_in_flight_go_together_and_each_gets_its_answer(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection, batches: list[int]
):
    assert await deliver_four(client, kit, account) == [200, 200, 200, 200]
    assert batches == [1, 3]
    state = await counts(db)
    assert (state["contacts"], state["conversations"], state["messages"]) == (1, 1, 4)
    assert await db.fetchval("select unread_count from conversations") == 4


async def test_a_replay_among_deliveries_that_went_together_fails_alone(
    client: httpx.AsyncClient,
    kit: Kit,
    account: Account,
    db: Connection,
    batches: list[int],
    monkeypatch: pytest.MonkeyPatch,
):
    """The fourth carries the one-time token the first used: the shared call fails,
    and its deliveries run again one by one, so only the replay is refused."""
    channel = CHANNELS[kit.channel]
    verify = channel.verify

    def verify_with_nonce(request: WebhookRequest, acc: ChannelAccount) -> str:
        verify(request, acc)
        if b"msg-first" in request.body or b"msg-fourth" in request.body:
            return "token-of-the-first"
        return hashlib.sha256(request.body).hexdigest()

    monkeypatch.setattr(channel, "verify", verify_with_nonce)
    assert await deliver_four(client, kit, account) == [200, 200, 200, 401]
    assert batches == [1, 3, 1, 1, 1]
    assert (await counts(db))["messages"] == 3
    bodies = await db.fetch("select body from messages")
    assert sorted(row["body"] for row in bodies) == sorted(TEXTS[:3])


def message_event(message_id: str, content_type: str = "text") -> dict[str, Any]:
    """A WhatsApp message event as the pipeline hands it to the database."""
    message = InboundMessage(
        provider_message_id=message_id,
        sender=Sender(external_id="16315550004"),
        content_type="text",
        body="hi",
        occurred_at=datetime.now(UTC),
    )
    parsed = pipeline.storable(message) | {"content_type": content_type}
    event = {"provider_event_id": message_id, "event_type": "message", "payload": {}}
    return {**event, "parsed": parsed, "parse_error": None}


async def one_delivery(db: Connection, events: list[dict[str, Any]]) -> dict[str, Any]:
    """A delivery of `events` to a new WhatsApp account, as app.receive_inbound_deliveries
    takes it (with the account's version)."""
    account = await WhatsAppKit().create_account(db, await make_org(db, await make_user(db)))
    version = await db.fetchval(
        "select a.xmin::text || '/' || c.xmin::text from channel_accounts a"
        " join private.channel_credentials c on c.channel_account_id = a.id where a.id = $1",
        account.id,
    )
    return {"account": str(account.id), "version": version, "events": events, "nonce": None}


async def test_a_batch_locks_each_sender_with_the_key_ingesting_its_message_takes(
    db: Connection, runtime: Runtime
):
    """The senders' locks are taken up front, in one order, so that batches never wait
    on each other in a cycle. That holds only if app.ingest_message takes the same
    key again: then the sender is held by one lock, not two."""
    delivery = await one_delivery(db, [message_event("wamid.LOCK1")])
    async with runtime.db.service_tx() as conn:
        [summary] = await conn.fetchval("select app.receive_inbound_deliveries($1)", [delivery])
        locks = await conn.fetchval(
            "select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()"
        )
    assert summary["processed"] == 1
    assert locks == 1


async def test_a_message_that_fails_midway_leaves_the_inboxs_broadcasts_on(
    db: Connection, runtime: Runtime
):
    """app.ingest_message holds the conversation's broadcast back while it writes the
    message; when the message fails there (here: a content type the enum refuses), the
    event's rollback turns the broadcasts on again for what follows in the transaction."""
    delivery = await one_delivery(
        db, [message_event("wamid.BAD1", content_type="hologram"), message_event("wamid.OK1")]
    )
    async with runtime.db.service_tx() as conn:
        [summary] = await conn.fetchval("select app.receive_inbound_deliveries($1)", [delivery])
        setting = await conn.fetchval("select current_setting('connectgain.broadcast', true)")
        await conn.execute("update conversations set status = 'pending'")
    assert (summary["failed"], summary["processed"]) == (1, 1)
    assert setting != "off"
    tables = await db.fetch("select payload ->> 'table' as t from realtime.messages order by id")
    assert sorted(row["t"] for row in tables) == ["conversations", "messages"]
