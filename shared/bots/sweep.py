"""The bots' clock: delays that ran out go on, idle sessions time out, and the record
of handled messages forgets what is a day old. Run by the `bot-sweep` function; each
resumed session is taken under its conversation's lock, in a transaction of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.bots.host import CONVERSATION
from shared.bots.sending import send_all
from shared.bots.sessions import engine_of, live_session, lock, save, state_of
from shared.inbox.outbound import Outbound
from shared.runtime import Runtime


async def sweep(
    runtime: Runtime, *, now: datetime | None = None, limit: int = 200
) -> dict[str, int]:
    """Delays that ran out go on; sessions idle past their timeout end timed_out."""
    at = now or datetime.now(UTC)
    counts = {"resumed": 0, "timed_out": 0, "forgotten": 0}
    async with runtime.db.service_tx() as conn:
        counts["timed_out"] = len(
            await conn.fetch(
                """
                with idle as (
                  select id from public.bot_sessions
                   where status in ('active', 'waiting') and expires_at <= $1
                   order by expires_at limit $2 for update skip locked
                )
                update public.bot_sessions s
                   set status = 'timed_out', ended_at = $1, expires_at = null, resume_at = null,
                       end_reason = 'no activity within the timeout'
                  from idle where s.id = idle.id
                returning s.id
                """,
                at,
                limit,
            )
        )
        forgotten = await conn.execute(
            "delete from private.bot_handled_messages where handled_at < $1::timestamptz -"
            " interval '1 day'",
            at,
        )
        counts["forgotten"] = int(forgotten.split()[-1])
        due = await conn.fetch(
            "select id, organization_id, conversation_id from public.bot_sessions"
            " where status = 'waiting' and resume_at <= $1 order by resume_at limit $2",
            at,
            limit,
        )
    for row in due:
        counts["resumed"] += await _resume(runtime, row, at)
    return counts


async def _resume(runtime: Runtime, row: Any, at: datetime) -> int:
    jobs: list[Outbound] = []
    async with runtime.db.service_tx() as conn:
        await lock(conn, row["conversation_id"])
        session = await live_session(conn, row["organization_id"], row["conversation_id"])
        if session is None or session["id"] != row["id"]:
            return 0
        conversation = await conn.fetchrow(
            CONVERSATION, row["organization_id"], row["conversation_id"]
        )
        engine = await engine_of(runtime, conn, session, conversation, jobs)
        if engine is None:
            return 0
        state = state_of(session)
        steps = await engine.resume(state, at)
        if not steps:
            return 0
        await save(conn, session, state, steps)
    await send_all(runtime, jobs)
    return 1
