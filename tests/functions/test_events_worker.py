"""events-worker with outbound webhooks: from a provider's message to a signed delivery,
retries, dead letters, disabling, and workers running at once or dying.

Deliveries are checked with the `standardwebhooks` library's Webhook.verify, as a
receiver would, and answered through respx (the HTTP layer). Time moves through
the worker's `now`, never sleeps.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import pytest
import respx

from shared.db import Connection
from shared.events import worker
from shared.events.consumers import CONSUMERS
from shared.events.sender import STANDARD_WEBHOOKS_WAITS, WEBHOOK_WAITS
from shared.runtime import Runtime
from shared.settings import Settings
from tests.channels.kit import post
from tests.channels.whatsapp.kit import WhatsAppKit
from tests.functions.webhooks_kit import (
    HOOK,
    SLOW,
    endpoint,
    hook_and_contact,
    later,
    make_admins,
    public_dns,
    verified,
)
from tests.support import auth, make_contact

KIT = WhatsAppKit()


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> None:
    public_dns(monkeypatch)


@pytest.fixture
async def org(db: Connection) -> dict[str, UUID]:
    return await make_admins(db)


async def test_only_the_service_key_runs_the_worker(client: httpx.AsyncClient, settings: Settings):
    assert (await client.post("/functions/v1/events-worker")).status_code == 401
    service = {"Authorization": f"Bearer {settings.service_key}"}
    answer = await client.post("/functions/v1/events-worker", headers=service)
    assert answer.status_code == 200
    assert answer.json()["claimed"] == 0


async def test_a_whatsapp_message_reaches_the_endpoint_signed_and_a_500_is_retried(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    hook = await endpoint(client, settings, org, HOOK, ["message.received"])
    account = await KIT.create_account(db, org["org"])
    message = KIT.text_message(account, sender="351912345678", message_id="wamid.A1", text="Olá")
    with respx.mock(assert_all_called=False) as router:
        KIT.mock_provider(router)
        route = router.post(HOOK).mock(
            side_effect=[httpx.Response(500, text="down for maintenance"), httpx.Response(204)]
        )
        assert (await post(client, KIT, account.id, message)).status_code == 200
        service = {"Authorization": f"Bearer {settings.service_key}"}
        first = (await client.post("/functions/v1/events-worker", headers=service)).json()
        assert (first["deliveries"], first["claimed"], first["failed"]) == (1, 1, 1)
        assert (await worker.run(runtime, now=later(seconds=4))).claimed == 0  # not yet
        second = await worker.run(runtime, now=later(seconds=6))
        assert (second.claimed, second.processed) == (1, 1)

    failed, delivered = route.calls
    assert failed.request.headers["webhook-id"] == delivered.request.headers["webhook-id"]
    body = verified(hook["secret"], delivered.request)
    assert body["type"] == "message.received"
    assert body["data"]["body"] == "Olá" and body["data"]["direction"] == "inbound"
    assert body["timestamp"].endswith("Z")
    with pytest.raises(Exception, match="signature"):
        verified("whsec_" + "A" * 43 + "=", delivered.request)

    attempts = await client.get(
        f"/functions/v1/webhook-endpoints/{hook['id']}/attempts",
        headers=auth(settings, org["admin"]),
    )
    newest, oldest = attempts.json()["data"]
    assert (newest["attempt"], newest["status_code"], newest["error"]) == (2, 204, None)
    assert (oldest["attempt"], oldest["status_code"], oldest["error"]) == (1, 500, "HTTP 500")
    assert oldest["response_excerpt"] == "down for maintenance"
    assert oldest["latency_ms"] >= 0

    # an admin sends a delivered event again: same webhook-id, a fresh signature
    replay = f"/functions/v1/events-worker/deliveries/{newest['delivery_id']}/replay"
    replayed = await client.post(replay, headers=auth(settings, org["admin"]))
    assert replayed.status_code == 200, replayed.text
    with respx.mock as router:
        again = router.post(HOOK).respond(200)
        assert (await worker.run(runtime, now=later(seconds=7))).processed == 1
    resent = again.calls[0].request
    assert resent.headers["webhook-id"] == delivered.request.headers["webhook-id"]
    assert verified(hook["secret"], resent)["data"]["body"] == "Olá"


async def test_spent_retries_make_a_dead_letter_an_admin_replays(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    hook = await hook_and_contact(client, settings, db, org)
    start, elapsed = datetime.now(UTC), timedelta()
    with respx.mock as router:
        route = router.post(HOOK).respond(503, text="x" * 5000)
        summaries = []
        for wait in (timedelta(), *WEBHOOK_WAITS):
            elapsed += wait
            summaries.append(await worker.run(runtime, now=start + elapsed))
        assert [s.claimed for s in summaries] == [1] * 10
        assert summaries[-1].dead == 1 and route.call_count == 10
        # Standard Webhooks' schedule (about 28 hours) first, then a day at a time
        assert WEBHOOK_WAITS[: len(STANDARD_WEBHOOKS_WAITS)] == STANDARD_WEBHOOKS_WAITS
        assert timedelta(days=3) < elapsed < timedelta(days=3, hours=6)
        assert len({c.request.headers["webhook-id"] for c in route.calls}) == 1
        # three days of failures are not yet "failing for days": it is still enabled
        assert await db.fetchval("select enabled from webhook_endpoints") is True

        letters = "/functions/v1/events-worker/dead-letters"
        params = {"organization_id": str(org["org"])}
        agent = await client.get(letters, params=params, headers=auth(settings, org["agent"]))
        assert agent.status_code == 403
        admin = auth(settings, org["admin"])
        (letter,) = (await client.get(letters, params=params, headers=admin)).json()["data"]
        assert (letter["consumer"], letter["target"], letter["attempts"]) == (
            "webhooks",
            hook["id"],
            10,
        )
        assert letter["last_error"] == "HTTP 503"
        excerpt = await db.fetchval("select max(length(response_excerpt)) from webhook_attempts")
        assert excerpt == 1000

        replay = f"/functions/v1/events-worker/deliveries/{letter['id']}/replay"
        assert (await client.post(replay, headers=auth(settings, org["agent"]))).status_code == 404
        replayed = await client.post(replay, headers=admin)
        assert replayed.status_code == 200 and replayed.json()["status"] == "pending"
        again = await client.post(replay, headers=admin)
        assert again.status_code == 409
        route.respond(200)
        assert (await worker.run(runtime, now=later(seconds=1))).processed == 1
    assert verified(hook["secret"], route.calls[-1].request)["type"] == "contact.created"


async def test_an_endpoint_failing_for_days_is_disabled_and_the_organization_told(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    hook = await endpoint(client, settings, org, HOOK, ["contact.created"])
    await db.execute(
        "update webhook_endpoints set failing_since = now() - interval '5 days 1 minute'"
    )
    await make_contact(db, org["org"])
    with respx.mock as router:
        router.post(HOOK).respond(500)
        await worker.run(runtime, now=later(seconds=1))
    shown = await client.get(
        f"/functions/v1/webhook-endpoints/{hook['id']}", headers=auth(settings, org["admin"])
    )
    assert shown.json()["status"] == "disabled"
    assert shown.json()["disabled_reason"].startswith("failed without a success since")
    told = await db.fetchrow(
        "select organization_id, payload from outbox_events"
        " where event_type = 'webhook_endpoint.disabled'"
    )
    assert told["organization_id"] == org["org"] and told["payload"]["id"] == hook["id"]

    # Nothing more goes to it; what was still waiting becomes a dead letter.
    await make_contact(db, org["org"])
    with respx.mock:  # no route: any request would fail the test
        summary = await worker.run(runtime, now=later(seconds=10))
    assert summary.deliveries == 0
    assert summary.dead == 1  # the first event's retry
    assert (
        await db.fetchval("select last_error from event_deliveries where status = 'dead'")
        == "the endpoint is disabled"
    )


async def test_two_workers_at_once_deliver_each_event_to_each_endpoint_once(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    await endpoint(client, settings, org, HOOK, ["contact.created"])
    await endpoint(client, settings, org, SLOW, ["contact.created"])
    for _ in range(30):
        await make_contact(db, org["org"])
    now = later(seconds=1)
    with respx.mock as router:
        route = router.post(host__in=["hooks.example.com", "slow.example.com"]).respond(200)
        first, second = await asyncio.gather(
            worker.run(runtime, limit=4, now=now), worker.run(runtime, limit=4, now=now)
        )
    sent = [(str(c.request.url), c.request.headers["webhook-id"]) for c in route.calls]
    assert len(sent) == len(set(sent)) == 60
    assert first.processed + second.processed == 60
    assert first.processed and second.processed  # both took part


async def test_a_delivery_leased_by_a_worker_that_died_is_sent_after_the_lease(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    hook = await hook_and_contact(client, settings, db, org)
    now = later(seconds=1)
    lease = settings.events_lease_seconds
    consumers = list(CONSUMERS)
    _, (leased,) = await worker.dispatch(
        runtime.db, consumers=consumers, limit=10, lease=lease, now=now
    )  # ... and the worker dies before sending
    with respx.mock as router:
        route = router.post(HOOK).respond(200)
        assert (await worker.run(runtime, now=now + timedelta(seconds=lease - 1))).claimed == 0
        after = await worker.run(runtime, now=now + timedelta(seconds=lease + 1))
    assert after.processed == 1 and route.call_count == 1
    assert verified(hook["secret"], route.calls[0].request)["type"] == "contact.created"
    assert await db.fetchval("select attempt from webhook_attempts") == leased.attempt + 1


async def test_a_delivery_to_a_deleted_endpoint_is_cancelled_without_a_request(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    hook = await hook_and_contact(client, settings, db, org)
    with respx.mock as router:
        router.post(HOOK).respond(500)
        assert (await worker.run(runtime, now=later(seconds=1))).failed == 1
    deleted = await client.delete(
        f"/functions/v1/webhook-endpoints/{hook['id']}", headers=auth(settings, org["admin"])
    )
    assert deleted.status_code == 204
    with respx.mock:  # no route: a request would fail the test
        assert (await worker.run(runtime, now=later(seconds=10))).cancelled == 1
    row = await db.fetchrow("select status, last_error from event_deliveries")
    assert dict(row) == {"status": "cancelled", "last_error": "the endpoint was deleted"}


async def test_replaying_a_missing_or_malformed_delivery_id_is_refused(
    client: httpx.AsyncClient, settings: Settings, org: dict[str, UUID]
):
    admin = auth(settings, org["admin"])
    url = "/functions/v1/events-worker/deliveries/{}/replay"
    assert (await client.post(url.format(2**40), headers=admin)).status_code == 404
    for bad in ("0", "x", str(2**63)):
        assert (await client.post(url.format(bad), headers=admin)).status_code == 422, bad
