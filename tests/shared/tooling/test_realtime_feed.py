"""How broadcasts reach the server: in commit order, none skipped when transactions
overlap, one transaction's rows as inserted; and realtime.messages kept as short as
Supabase keeps it."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.db import Connection
from shared.settings import Settings
from shared.tooling.realtime_feed import RETENTION_HOURS, poll, prune
from tests.shared.tooling import realtime_kit as kit
from tests.shared.tooling.realtime_kit import Served, raw

pytestmark = pytest.mark.asyncio(loop_scope="module")
settings, runtime, db, served = kit.settings, kit.runtime, kit.db, kit.served  # one world

PUBLIC = {"private": False, "broadcast": {"self": False, "ack": False}}


async def send(conn: Connection | asyncpg.Connection, event: str, topic: str) -> None:
    await conn.execute("select realtime.send('{}', $1, $2, false)", event, topic)


async def test_a_transaction_that_commits_last_is_delivered_last_and_never_skipped(
    served: Served, settings: Settings, db: Connection
):
    early = await asyncpg.connect(settings.database_url)
    try:
        async with raw(served, settings.local_key("anon")) as client:
            assert (await client.join("realtime:order", PUBLIC))["status"] == "ok"
            async with early.transaction():
                # Begins first (its rows' inserted_at is the earlier) and commits last.
                await send(early, "first-begun", "order")
                await send(early, "first-begun-2", "order")
                async with db.transaction():
                    await send(db, "second-begun", "order")
                assert (await client.recv())["payload"]["event"] == "second-begun"
                await asyncio.sleep(0.02)  # polls pass while the early one is open
            events = [(await client.recv())["payload"]["event"] for _ in range(2)]
            assert events == ["first-begun", "first-begun-2"]  # as inserted
    finally:
        await early.close()
    first, second = await db.fetch(
        "select event, inserted_at from realtime.messages where topic = 'order'"
        " and event in ('first-begun', 'second-begun') order by inserted_at"
    )
    # What a watermark on inserted_at would have skipped: committed after its successor.
    assert (first["event"], second["event"]) == ("first-begun", "second-begun")


async def test_a_poll_sees_exactly_what_committed_out_of_the_last_ones_sight(
    settings: Settings, db: Connection
):
    reader = await asyncpg.connect(settings.database_url)
    writer = await asyncpg.connect(settings.database_url)
    try:
        snapshot = await reader.fetchval("select pg_current_snapshot()::text")
        tx = writer.transaction()
        await tx.start()
        await send(writer, "open", "poll")
        await send(db, "committed", "poll")
        rows, snapshot = await poll(reader, snapshot)
        assert [r.event for r in rows if r.topic == "poll"] == ["committed"]
        await tx.rollback()  # never committed: never delivered
        await send(db, "later", "poll")
        rows, snapshot = await poll(reader, snapshot)
        assert [r.event for r in rows if r.topic == "poll"] == ["later"]
        assert (await poll(reader, snapshot))[0] == []
    finally:
        await reader.close()
        await writer.close()


async def test_pruning_drops_what_supabase_drops_with_its_day_partitions(db: Connection):
    cutoff = await db.fetchval(
        f"select date_trunc('day', localtimestamp - interval '{RETENTION_HOURS} hours')"
    )
    await db.execute(
        "insert into realtime.messages (topic, extension, event, inserted_at) values"
        " ('prune', 'broadcast', 'expired', $1::timestamp - interval '1 minute'),"
        " ('prune', 'broadcast', 'kept-same-day', $1::timestamp + interval '1 minute'),"
        " ('prune', 'broadcast', 'kept-now', localtimestamp)",
        cutoff,
    )
    assert await prune(db) >= 1
    left = await db.fetch("select event from realtime.messages where topic = 'prune'")
    assert sorted(r["event"] for r in left) == ["kept-now", "kept-same-day"]
    assert await prune(db) == 0


async def test_the_server_prunes_when_it_starts(settings: Settings, db: Connection, runtime):
    await db.execute(
        "insert into realtime.messages (topic, extension, event, inserted_at)"
        " values ('prune', 'broadcast', 'ancient', localtimestamp - interval '5 days')"
    )
    async with kit.serving(settings, runtime) as started:
        await started.gateway.realtime.feed.ready()
        for _ in range(200):  # its first round prunes, then it polls
            if not await db.fetchval(
                "select count(*) from realtime.messages where event = 'ancient'"
            ):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the server did not prune the expired broadcast")


async def test_a_lost_database_connection_skips_nothing(
    served: Served, settings: Settings, db: Connection
):
    async with raw(served, settings.local_key("anon")) as client:
        assert (await client.join("realtime:outage", PUBLIC))["status"] == "ok"
        killed = await db.fetchval(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity"
            " where application_name = 'connectgain-realtime' and datname = current_database()"
        )
        assert killed == 1
        await send(db, "during", "outage")  # committed while the feed reconnects
        heard = await client.recv(seconds=5)
        assert heard["payload"]["event"] == "during"
