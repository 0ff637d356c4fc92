"""events-retention: old processed events go with their deliveries, attempts and runs;
what is pending, recent or an unreplayed dead letter stays; batches are bounded and walk
an index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx

from shared.db import Connection
from shared.events import retention
from shared.events.retention import purge
from shared.runtime import Runtime
from shared.settings import Settings
from tests.shared.automation.kit import make_rule
from tests.support import make_org, make_user

NOW = datetime.now(UTC)
DAY = timedelta(days=1)


async def event(db: Connection, org: UUID, *, age: timedelta | None) -> int:
    """An event processed `age` ago (None: not processed yet)."""
    made: int = await db.fetchval(
        "insert into outbox_events (organization_id, event_type, payload, created_at,"
        " processed_at) values ($1, 'contact.created', '{}', $2, $3) returning id",
        org,
        NOW - (age or timedelta()) - timedelta(seconds=1),
        None if age is None else NOW - age,
    )
    return made


async def delivery(
    db: Connection, org: UUID, event_id: int, status: str, finished: timedelta | None, hook: UUID
) -> int:
    made: int = await db.fetchval(
        "insert into event_deliveries (organization_id, event_id, consumer, target, status,"
        " finished_at) values ($1, $2, 'webhooks', $3, $4, $5) returning id",
        org,
        event_id,
        hook,
        status,
        None if finished is None else NOW - finished,
    )
    await db.execute(
        "insert into webhook_attempts (organization_id, endpoint_id, delivery_id, attempt,"
        " attempted_at, status_code, latency_ms) values ($1, $2, $3, 1, now(), 500, 3)",
        org,
        hook,
        made,
    )
    return made


def with_(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update=changes)


async def test_old_finished_work_goes_and_the_rest_stays(
    client: httpx.AsyncClient, settings: Settings, runtime: Runtime, db: Connection
):
    org = await make_org(db, await make_user(db))
    hook = await db.fetchval(
        "insert into webhook_endpoints (organization_id, url, events)"
        " values ($1, 'https://example.com/h', '{contact.created}') returning id",
        org,
    )
    rule = await make_rule(db, org, "contact.created", [{"type": "stop"}])
    old_done = await event(db, org, age=40 * DAY)
    await delivery(db, org, old_done, "done", 39 * DAY, hook)
    await db.execute(
        "insert into automation_runs (organization_id, rule_id, event_id, event_type, status,"
        " matched) values ($1, $2, $3, 'contact.created', 'ran', true)",
        org,
        rule,
        old_done,
    )
    bare = await event(db, org, age=31 * DAY)  # no consumer wanted it
    old_dead = await event(db, org, age=100 * DAY)
    await delivery(db, org, old_dead, "dead", 95 * DAY, hook)
    kept = {
        "recent": await event(db, org, age=2 * DAY),
        "unprocessed": await event(db, org, age=None),
        "dead letter": await event(db, org, age=40 * DAY),
        "pending": await event(db, org, age=40 * DAY),
        "replayed lately": await event(db, org, age=40 * DAY),
    }
    await delivery(db, org, kept["dead letter"], "dead", 37 * DAY, hook)
    await delivery(db, org, kept["pending"], "pending", None, hook)
    await delivery(db, org, kept["replayed lately"], "done", 1 * DAY, hook)
    await db.execute(
        "update outbox_events set processed_at = null where id = $1", kept["unprocessed"]
    )

    # one event per batch, at most two batches a run: bounded, oldest first
    small = with_(settings, events_retention_batch=1, events_retention_max_batches=2)
    assert await purge(runtime.db, settings=small, now=NOW) == {"deleted": 2, "batches": 2}
    left = {r["id"] for r in await db.fetch("select id from outbox_events")}
    assert old_dead not in left and old_done not in left and bare in left

    # kept events at the front never hold the walk up: the cursor steps over them
    three = with_(settings, events_retention_batch=1, events_retention_max_batches=3)
    assert await purge(runtime.db, settings=three, now=NOW) == {"deleted": 0, "batches": 3}
    assert await purge(runtime.db, settings=small, now=NOW) == {"deleted": 1, "batches": 2}
    service = {"Authorization": f"Bearer {settings.service_key}"}
    assert (await client.post("/functions/v1/events-retention")).status_code == 401
    answer = await client.post("/functions/v1/events-retention", headers=service)
    assert answer.status_code == 200 and answer.json() == {"deleted": 0, "batches": 1}
    left = {r["id"] for r in await db.fetch("select id from outbox_events")}
    assert left == set(kept.values())
    # the deliveries, attempts and runs of what went went with it; the rest are whole
    assert await db.fetchval("select count(*) from automation_runs") == 0
    assert await db.fetchval("select count(*) from event_deliveries") == 3
    assert await db.fetchval("select count(*) from webhook_attempts") == 3

    # a dead letter is kept until it is 90 days old (the setting), then goes
    shorter = with_(settings, dead_letter_retention_days=30)
    assert (await purge(runtime.db, settings=shorter, now=NOW))["deleted"] == 1
    assert kept["dead letter"] not in {
        r["id"] for r in await db.fetch("select id from outbox_events")
    }


async def test_a_batch_walks_the_processed_time_index(runtime: Runtime, db: Connection):
    """The plan a run uses on a large table: an index range on processed_at, never a scan
    of the whole outbox (the planner is told off sequential scans: the table is small)."""
    async with db.transaction():
        await db.execute("set local enable_seqscan = off")
        rows = await db.fetch("explain " + retention._BATCH, NOW, NOW, 1000)
        plan = "\n".join(r[0] for r in rows)
    assert "outbox_events_processed_idx" in plan, plan
