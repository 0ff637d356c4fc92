"""Statuses, failures and retries through the inbound pipeline, for every channel."""

from __future__ import annotations

import asyncio
from uuid import UUID

import httpx
import pytest

from shared.channels import CHANNELS
from shared.db import Connection
from shared.inbox import pipeline
from shared.settings import Settings
from shared.web import Runtime
from tests.channels.conftest import counts, post
from tests.channels.kits import KITS, Account, Kit
from tests.support import make_contact

WITH_STATUSES = [kit for kit in KITS.values() if kit.has_statuses]
SENDER = "16315550002"


async def outbound(db: Connection, account: Account, provider_message_id: str) -> UUID:
    """A message we sent earlier, as send-message records it."""
    contact = await make_contact(db, account.organization_id)
    conversation = await db.fetchval(
        "insert into conversations (organization_id, contact_id, channel_account_id)"
        " values ($1, $2, $3) returning id",
        account.organization_id,
        contact,
        account.id,
    )
    message: UUID = await db.fetchval(
        "insert into messages (organization_id, conversation_id, channel_account_id, direction,"
        " sender_type, body, status, provider_message_id, sent_at)"
        " values ($1, $2, $3, 'outbound', 'user', 'hi', 'sent', $4, now()) returning id",
        account.organization_id,
        conversation,
        account.id,
        provider_message_id,
    )
    return message


async def retry(client: httpx.AsyncClient, settings: Settings, db: Connection) -> dict[str, int]:
    await db.execute("update inbound_events set next_attempt_at = now() where status = 'failed'")
    response = await client.post(
        "/functions/v1/inbound-retry", headers={"Authorization": f"Bearer {settings.service_key}"}
    )
    assert response.status_code == 200, response.text
    summary: dict[str, int] = response.json()
    return summary


@pytest.mark.parametrize("kit", WITH_STATUSES, ids=lambda k: k.channel)
async def test_statuses_out_of_order_never_move_a_message_backwards(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    message = await outbound(db, account, "wamid.OUT-7")
    for status in ("read", "delivered", "sent"):
        response = await post(
            client,
            kit,
            account.id,
            kit.status(account, provider_message_id="wamid.OUT-7", status=status),
        )
        assert response.json()["processed"] == 1
    row = await db.fetchrow(
        "select status::text, delivered_at, read_at from messages where id = $1", message
    )
    assert row["status"] == "read"
    assert row["delivered_at"] is not None and row["read_at"] is not None


@pytest.mark.parametrize("kit", WITH_STATUSES, ids=lambda k: k.channel)
async def test_a_failed_status_keeps_the_providers_error(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    message = await outbound(db, account, "wamid.OUT-8")
    await post(
        client,
        kit,
        account.id,
        kit.status(account, provider_message_id="wamid.OUT-8", status="failed"),
    )
    row = await db.fetchrow("select status::text, error from messages where id = $1", message)
    assert row["status"] == "failed"
    assert row["error"]["code"] == kit.failed_error_code


@pytest.mark.parametrize("kit", WITH_STATUSES, ids=lambda k: k.channel)
async def test_a_status_before_its_message_waits_for_the_retry_job(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection, settings: Settings
):
    early = kit.status(account, provider_message_id="wamid.OUT-9", status="delivered")
    response = await post(client, kit, account.id, early)
    assert response.status_code == 200
    assert response.json()["failed"] == 1
    event = await db.fetchrow(
        "select status, attempts, last_error, next_attempt_at > now() as later from inbound_events"
    )
    assert (event["status"], event["attempts"], event["later"]) == ("failed", 1, True)
    assert "No outbound message wamid.OUT-9 yet" in event["last_error"]

    message = await outbound(db, account, "wamid.OUT-9")
    assert (await retry(client, settings, db))["processed"] == 1
    assert (
        await db.fetchval("select status::text from messages where id = $1", message) == "delivered"
    )
    assert await db.fetchval("select status from inbound_events") == "processed"


async def test_a_processing_failure_keeps_the_event_and_the_retry_delivers_it(
    client: httpx.AsyncClient,
    kit: Kit,
    account: Account,
    db: Connection,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
):
    def broken(*_: object) -> None:
        raise ValueError("parser hiccup")

    monkeypatch.setattr(CHANNELS[kit.channel], "parse", broken)
    first = kit.text_message(account, sender=SENDER, message_id="6001", text="kept")
    second = kit.text_message(account, sender=SENDER, message_id="6002", text="kept too")
    assert (await post(client, kit, account.id, first)).json()["failed"] == 1
    assert (await post(client, kit, account.id, second)).status_code == 200
    assert (await counts(db))["messages"] == 0
    assert await db.fetchval("select count(*) from inbound_events where status = 'failed'") == 2

    monkeypatch.undo()
    assert (await retry(client, settings, db))["processed"] == 2
    assert sorted(r["body"] for r in await db.fetch("select body from messages")) == [
        "kept",
        "kept too",
    ]


async def test_backoff_grows_and_gives_up_after_the_last_attempt(
    client: httpx.AsyncClient,
    kit: Kit,
    account: Account,
    db: Connection,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
):
    def broken(*_: object) -> None:
        raise ValueError("still broken")

    monkeypatch.setattr(CHANNELS[kit.channel], "parse", broken)
    await post(
        client,
        kit,
        account.id,
        kit.text_message(account, sender=SENDER, message_id="6003", text="x"),
    )
    delays = []
    for _ in range(3):
        delays.append(
            await db.fetchval(
                "select extract(epoch from next_attempt_at - now()) from inbound_events"
            )
        )
        await db.execute("update inbound_events set next_attempt_at = now()")
        await pipeline.retry_due(runtime)
    assert delays[0] < delays[1] < delays[2]
    # the 12th attempt is the last (app.process_inbound_event)
    await db.execute("update inbound_events set attempts = 11, next_attempt_at = now()")
    await pipeline.retry_due(runtime)
    assert await db.fetchval("select next_attempt_at = 'infinity' from inbound_events")


async def test_concurrent_retry_jobs_process_each_event_once(
    client: httpx.AsyncClient,
    kit: Kit,
    account: Account,
    db: Connection,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
):
    def broken(*_: object) -> None:
        raise ValueError("later")

    monkeypatch.setattr(CHANNELS[kit.channel], "parse", broken)
    for n in range(6):
        await post(
            client,
            kit,
            account.id,
            kit.text_message(account, sender=SENDER, message_id=f"70{n}", text=str(n)),
        )
    monkeypatch.undo()
    await db.execute("update inbound_events set next_attempt_at = now()")
    outcomes = await asyncio.gather(*(pipeline.retry_due(runtime, limit=4) for _ in range(3)))
    assert sum(o.processed for o in outcomes) == 6
    assert (await counts(db))["messages"] == 6


async def test_a_signed_one_time_token_seen_before_is_a_replay(
    client: httpx.AsyncClient,
    kit: Kit,
    account: Account,
    db: Connection,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
):
    """Channels whose signature covers a one-time token return it from verify()."""
    channel = CHANNELS[kit.channel]
    original = channel.verify

    def verify_with_nonce(request: object, acc: object) -> str:
        original(request, acc)  # type: ignore[arg-type]
        return "token-1"

    monkeypatch.setattr(channel, "verify", verify_with_nonce)
    first = kit.text_message(account, sender=SENDER, message_id="8001", text="once")
    second = kit.text_message(account, sender=SENDER, message_id="8002", text="replayed token")
    assert (await post(client, kit, account.id, first)).status_code == 200
    replay = await post(client, kit, account.id, second)
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "invalid_signature"
    assert (await counts(db))["messages"] == 1

    await db.execute("update private.webhook_nonces set seen_at = now() - interval '2 days'")
    await pipeline.retry_due(runtime)
    assert await db.fetchval("select count(*) from private.webhook_nonces") == 0
