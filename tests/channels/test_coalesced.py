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


async def test_a_batch_locks_each_sender_with_the_key_ingesting_its_message_takes(
    db: Connection, runtime: Runtime
):
    """The senders' locks are taken up front, in one order, so that batches never wait
    on each other in a cycle. That holds only if app.ingest_message takes the same
    key again: then the sender is held by one lock, not two."""
    account = await WhatsAppKit().create_account(db, await make_org(db, await make_user(db)))
    message = InboundMessage(
        provider_message_id="wamid.LOCK1",
        sender=Sender(external_id="16315550004"),
        content_type="text",
        body="hi",
        occurred_at=datetime.now(UTC),
    )
    event = {"provider_event_id": "wamid.LOCK1", "event_type": "message", "payload": {}}
    delivery = {
        "account": str(account.id),
        "version": await db.fetchval(
            "select a.xmin::text || '/' || c.xmin::text from channel_accounts a"
            " join private.channel_credentials c on c.channel_account_id = a.id where a.id = $1",
            account.id,
        ),
        "events": [{**event, "parsed": pipeline.storable(message), "parse_error": None}],
        "nonce": None,
    }
    async with runtime.db.service_tx() as conn:
        [summary] = await conn.fetchval("select app.receive_inbound_deliveries($1)", [delivery])
        locks = await conn.fetchval(
            "select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()"
        )
    assert summary["processed"] == 1
    assert locks == 1
