"""Statuses, failures and retries through the inbound pipeline, for every channel."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID

import httpx
import pytest
import respx

from shared.channels import http as provider_http
from shared.channels.registry import CHANNELS
from shared.db import Connection
from shared.inbox import pipeline
from shared.runtime import Runtime
from shared.settings import Settings
from tests.channels.kit import Account, Kit, counts, fetch_profiles, post
from tests.channels.kits import KITS
from tests.fixtures import load
from tests.support import make_contact

WITH_STATUSES = [kit for kit in KITS.values() if kit.statuses]
PER_MESSAGE = [kit for kit in WITH_STATUSES if not kit.watermarks]
WATERMARKS = [kit for kit in WITH_STATUSES if kit.watermarks]
WITH_FAILURES = [kit for kit in WITH_STATUSES if "failed" in kit.statuses]
SENDER = "16315550002"


def channel_id(kit: Kit) -> str:
    return kit.channel


async def outbound(
    db: Connection,
    kit: Kit,
    account: Account,
    provider_message_id: str | None,
    *,
    to: str = SENDER,
    sent_ago: timedelta = timedelta(minutes=1),
    status: str = "sent",
) -> UUID:
    """A message we sent `to` the contact `sent_ago`, as send-message records it."""
    contact = await db.fetchval(
        "select contact_id from contact_identities where channel = $1 and external_id = $2",
        kit.channel,
        kit.identity(to),
    )
    if contact is None:
        contact = await make_contact(db, account.organization_id)
        await db.execute(
            "insert into contact_identities (organization_id, contact_id, channel, external_id)"
            " values ($1, $2, $3, $4)",
            account.organization_id,
            contact,
            kit.channel,
            kit.identity(to),
        )
    conversation = await db.fetchval(
        "select id from conversations where contact_id = $1", contact
    ) or await db.fetchval(
        "insert into conversations (organization_id, contact_id, channel_account_id)"
        " values ($1, $2, $3) returning id",
        account.organization_id,
        contact,
        account.id,
    )
    message: UUID = await db.fetchval(
        "insert into messages (organization_id, conversation_id, channel_account_id, direction,"
        " sender_type, body, status, provider_message_id, created_at, sent_at)"
        " values ($1, $2, $3, 'outbound', 'user', 'hi', $4, $5, now() - $6::interval,"
        " case when $7 then now() - $6::interval end) returning id",
        account.organization_id,
        conversation,
        account.id,
        status,
        provider_message_id,
        sent_ago,
        status == "sent",
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


@pytest.mark.parametrize("kit", WITH_STATUSES, ids=channel_id)
async def test_statuses_out_of_order_never_move_a_message_backwards(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    message = await outbound(db, kit, account, "wamid.OUT-7")
    for status in reversed([s for s in kit.statuses if s != "failed"]):
        delivery = kit.status(
            account, provider_message_id="wamid.OUT-7", status=status, recipient=SENDER
        )
        response = await post(client, kit, account.id, delivery)
        assert response.json()["processed"] == 1, response.text
    row = await db.fetchrow(
        "select status::text, delivered_at, read_at from messages where id = $1", message
    )
    assert row["status"] == "read"
    assert row["delivered_at"] is not None and row["read_at"] is not None


@pytest.mark.parametrize("kit", WITH_FAILURES, ids=channel_id)
async def test_a_failed_status_keeps_the_providers_error(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    message = await outbound(db, kit, account, "wamid.OUT-8")
    await post(
        client,
        kit,
        account.id,
        kit.status(account, provider_message_id="wamid.OUT-8", status="failed", recipient=SENDER),
    )
    row = await db.fetchrow("select status::text, error from messages where id = $1", message)
    assert row["status"] == "failed"
    assert row["error"]["code"] == kit.failure_code


@pytest.mark.parametrize("kit", PER_MESSAGE, ids=channel_id)
async def test_a_status_before_its_message_waits_for_the_retry_job(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection, settings: Settings
):
    early = kit.status(
        account, provider_message_id="wamid.OUT-9", status="delivered", recipient=SENDER
    )
    response = await post(client, kit, account.id, early)
    assert response.status_code == 200
    assert response.json()["failed"] == 1
    event = await db.fetchrow(
        "select status, attempts, last_error, next_attempt_at > now() as later from inbound_events"
    )
    assert (event["status"], event["attempts"], event["later"]) == ("failed", 1, True)
    assert "No outbound message wamid.OUT-9 yet" in event["last_error"]

    message = await outbound(db, kit, account, "wamid.OUT-9")
    assert (await retry(client, settings, db))["processed"] == 1
    assert (
        await db.fetchval("select status::text from messages where id = $1", message) == "delivered"
    )
    assert await db.fetchval("select status from inbound_events") == "processed"


@pytest.mark.parametrize("kit", WATERMARKS, ids=channel_id)
async def test_a_watermark_covers_every_earlier_message_to_that_contact_and_no_other(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    earlier = await outbound(db, kit, account, "out-1", sent_ago=timedelta(minutes=3))
    latest = await outbound(db, kit, account, "out-2", sent_ago=timedelta(minutes=1))
    elsewhere = await outbound(db, kit, account, "out-3", to="16315559999")
    after = await outbound(db, kit, account, "out-4", sent_ago=timedelta(minutes=-5))
    statuses = {}
    for status in kit.statuses:
        delivery = kit.status(account, provider_message_id="out-2", status=status, recipient=SENDER)
        assert (await post(client, kit, account.id, delivery)).json()["processed"] == 1
        rows = await db.fetch("select id, status::text from messages")
        statuses[status] = {r["id"]: r["status"] for r in rows}
        assert statuses[status][earlier] == statuses[status][latest] == status
        assert statuses[status][elsewhere] == statuses[status][after] == "sent"
    watermarked = await db.fetchrow(
        "select sent_at, delivered_at, read_at from messages where id = $1", earlier
    )
    assert None not in dict(watermarked).values()


@pytest.mark.parametrize("kit", WATERMARKS, ids=channel_id)
async def test_a_watermark_that_arrives_before_send_message_records_the_send_still_counts(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    """The provider reports faster than send-message records its answer: the message is
    still queued, and the status it got stays when the send is recorded."""
    queued = await outbound(db, kit, account, None, status="queued")
    status = kit.statuses[-1]
    delivery = kit.status(account, provider_message_id="out-5", status=status, recipient=SENDER)
    assert (await post(client, kit, account.id, delivery)).json()["processed"] == 1
    assert await db.fetchval("select status::text from messages where id = $1", queued) == status

    recorded = await db.fetchrow(
        "select status::text, provider_message_id from app.record_send($1, $2, 'sent', 'out-5',"
        " null, '[]')",
        queued,
        account.organization_id,
    )
    assert dict(recorded) == {"status": status, "provider_message_id": "out-5"}


@pytest.mark.parametrize("kit", WATERMARKS, ids=channel_id)
async def test_a_watermark_for_a_contact_we_never_wrote_to_changes_nothing(
    client: httpx.AsyncClient, kit: Kit, account: Account, db: Connection
):
    mine = await outbound(db, kit, account, "out-6", to="16315559999")
    delivery = kit.status(
        account, provider_message_id="out-7", status=kit.statuses[-1], recipient=SENDER
    )
    response = await post(client, kit, account.id, delivery)
    assert response.json()["processed"] == 1  # nothing to wait for: no retry
    assert await db.fetchval("select status::text from messages where id = $1", mine) == "sent"
    assert await db.fetchval("select status from inbound_events") == "processed"


@pytest.fixture
def broken_parser(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The channel's parser fails, until the returned monkeypatch is undone."""

    def broken(*_: object) -> None:
        raise ValueError("parser hiccup")

    monkeypatch.setattr(CHANNELS[kit.channel], "parse", broken)
    return monkeypatch


async def test_a_processing_failure_keeps_the_event_and_the_retry_delivers_it(
    client: httpx.AsyncClient,
    kit: Kit,
    account: Account,
    db: Connection,
    settings: Settings,
    broken_parser: pytest.MonkeyPatch,
):
    first = kit.text_message(account, sender=SENDER, message_id="6001", text="kept")
    second = kit.text_message(account, sender=SENDER, message_id="6002", text="kept too")
    assert (await post(client, kit, account.id, first)).json()["failed"] == 1
    assert (await post(client, kit, account.id, second)).status_code == 200
    assert (await counts(db))["messages"] == 0
    assert await db.fetchval("select count(*) from inbound_events where status = 'failed'") == 2

    broken_parser.undo()
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
    broken_parser: pytest.MonkeyPatch,
):
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
    broken_parser: pytest.MonkeyPatch,
):
    for n in range(6):
        await post(
            client,
            kit,
            account.id,
            kit.text_message(account, sender=SENDER, message_id=f"70{n}", text=str(n)),
        )
    broken_parser.undo()
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


WITH_PROFILES = [kit for kit in KITS.values() if kit.profile_name is not None]


@pytest.mark.parametrize("kit", WITH_PROFILES, ids=channel_id)
async def test_a_new_contact_gets_name_and_avatar_from_the_profile_api_once(
    client: httpx.AsyncClient,
    kit: Kit,
    account: Account,
    db: Connection,
    runtime: Runtime,
    provider: respx.MockRouter,
):
    for n in ("9001", "9002"):
        delivery = kit.text_message(account, sender=SENDER, message_id=n, text=n)
        assert (await post(client, kit, account.id, delivery)).json()["processed"] == 1
    profile = provider["profile"]
    assert not profile.called, "the webhook answers without waiting on the profile API"
    assert (await fetch_profiles(runtime)).processed == 1
    await fetch_profiles(runtime)
    assert profile.call_count == 1, "only a new contact is looked up, once"
    assert profile.calls.last.request.url.path.endswith(f"/{kit.identity(SENDER)}")
    contact = await db.fetchrow("select name, avatar_url from contacts")
    assert contact["name"] == kit.profile_name
    assert contact["avatar_url"].startswith("https://")


@pytest.mark.parametrize("failure", ["refused", "down"])
@pytest.mark.parametrize("kit", WITH_PROFILES, ids=channel_id)
async def test_a_profile_api_failure_never_blocks_the_message(
    client: httpx.AsyncClient,
    kit: Kit,
    account: Account,
    db: Connection,
    runtime: Runtime,
    provider: respx.MockRouter,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
):
    async def no_wait(seconds: float) -> None:
        pass

    monkeypatch.setattr(provider_http, "sleep", no_wait)
    profile = provider["profile"]
    if failure == "refused":
        profile.respond(400, json=load(kit.channel, "error_no_profile"))
    else:
        profile.side_effect = httpx.ConnectTimeout("profile API unreachable")
    delivery = kit.text_message(account, sender=SENDER, message_id="9003", text="still here")
    response = await post(client, kit, account.id, delivery)
    assert response.status_code == 200
    assert response.json()["processed"] == 1
    assert await db.fetchval("select body from messages") == "still here"
    summary = await fetch_profiles(runtime)
    assert profile.called
    assert await db.fetchval("select name from contacts") is None
    # A refusal stays refused; an outage is tried again later.
    status = await db.fetchval(
        "select status from event_deliveries where consumer = 'contact_profiles'"
    )
    assert (status, summary.failed) == (
        ("cancelled", 0) if failure == "refused" else ("pending", 1)
    )
