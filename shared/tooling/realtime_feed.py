"""How the local Realtime server learns of the broadcasts realtime.send commits.

Supabase's server reads them from the WAL; this one polls realtime.messages on a
connection of its own, behind a watermark that is safe in commit order: the
snapshot of the previous poll (pg_current_snapshot). Each poll reads, in the same
statement that takes the new snapshot, the rows whose transaction that previous
snapshot did not see: committed since, or still running back then. A transaction
that began before another but commits after it is therefore delivered after it,
and never skipped, which a watermark on inserted_at (the transaction's start) or
on any sequence would do. One transaction's rows come in the order inserted
(`seq`); transactions committed between two polls come in transaction id order.

Polls are `interval` apart while someone listens, `idle_interval` apart otherwise
(the watermark keeps moving, so a first subscriber starts from now). The same task
prunes the table as Supabase's janitor does (PRUNE_EVERY_SECONDS): Supabase keeps a
partition a day and drops those older than 72 hours' date; the rows they would hold
are deleted here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

import asyncpg

log = logging.getLogger("connectgain.realtime")

RETENTION_HOURS = 72
PRUNE_EVERY_SECONDS = 600.0  # Supabase's janitor default (JANITOR_RUN_AFTER_IN_MS)

_SNAPSHOT = "select pg_current_snapshot()::text"
# The snapshot and the rows it sees that `$1` did not: one statement, one snapshot.
_POLL = """
with now as materialized (select pg_current_snapshot() as snap)
select now.snap::text as snap, m.topic, m.event, m.payload::text as payload, m.private, m.id
  from now
  left join lateral (
    select topic, event, payload, private, id, txid, seq
      from realtime.messages
     where txid >= pg_snapshot_xmin($1::text::pg_snapshot)
       and not pg_visible_in_snapshot(txid, $1::text::pg_snapshot)
       and extension = 'broadcast'
  ) m on true
 order by m.txid, m.seq
"""
_PRUNE = f"""
delete from realtime.messages
 where inserted_at < date_trunc('day', localtimestamp - interval '{RETENTION_HOURS} hours')
"""


@dataclass(frozen=True)
class Row:
    """A broadcast stored by realtime.send."""

    topic: str
    event: str
    payload: str  # JSON text, as stored
    private: bool
    id: UUID


async def poll(conn: asyncpg.Connection, snapshot: str) -> tuple[list[Row], str]:
    """The rows committed out of `snapshot`'s sight, in order, and the new snapshot."""
    records = await conn.fetch(_POLL, snapshot)
    rows = [
        Row(r["topic"], r["event"] or "", r["payload"] or "{}", bool(r["private"]), r["id"])
        for r in records
        if r["id"] is not None
    ]
    return rows, records[0]["snap"]


async def prune(conn: asyncpg.Connection) -> int:
    """Deletes the rows Supabase would have dropped with their day's partition."""
    status = await conn.execute(_PRUNE)
    return int(status.split()[-1])


class Feed:
    """The polling task: calls `deliver` with each poll's rows, in commit order."""

    def __init__(
        self,
        database_url: str,
        deliver: Callable[[list[Row]], None],
        listening: Callable[[], bool],
        *,
        interval: float = 0.02,
        idle_interval: float = 0.5,
    ) -> None:
        self.database_url = database_url
        self.deliver, self.listening = deliver, listening
        self.interval, self.idle_interval = interval, idle_interval
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._snapshot: str | None = None  # kept across reconnects: nothing is skipped

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="realtime-feed")

    async def ready(self) -> None:
        """Until the first watermark is taken: rows committed after are delivered."""
        self.start()
        await self._ready.wait()

    def wake(self) -> None:
        """Someone started listening: poll at the listening pace now."""
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                conn = await asyncpg.connect(
                    self.database_url, server_settings={"application_name": "connectgain-realtime"}
                )
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("Realtime cannot reach the database (%s); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            try:
                await self._serve(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("Realtime lost its database connection (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
            except Exception:  # a fault of ours: logged, and the feed goes on
                log.exception("Realtime's feed failed; starting it again")
                await asyncio.sleep(backoff)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _serve(self, conn: asyncpg.Connection) -> None:
        if self._snapshot is None:
            self._snapshot = await conn.fetchval(_SNAPSHOT)
        self._ready.set()
        pruned_at = 0.0
        while True:
            if time.monotonic() - pruned_at >= PRUNE_EVERY_SECONDS:
                if deleted := await prune(conn):
                    log.info("Realtime pruned %d broadcasts older than the retention", deleted)
                pruned_at = time.monotonic()
            rows, self._snapshot = await poll(conn, self._snapshot)
            if rows:
                self.deliver(rows)
            self._wake.clear()
            pace = self.interval if self.listening() else self.idle_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pace)
