"""Reading sessions and their steps' log, inside the caller's RLS transaction: what
the API lists (newest first, filtered), one session, and one session's steps in the
order they ran. The runtime writes them (shared.bots.sessions); nothing here does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from shared.bots.sessions import SESSION_COLUMNS
from shared.db import Connection, fetch_found

STEP_COLUMNS = (
    "id, session_id, node_id, kind, input, output, variables_changed, error, started_at,"
    " duration_ms"
)


SessionStatus = Literal["active", "waiting", "handed_off", "completed", "timed_out", "failed"]


class SessionFilter(BaseModel):
    """Which sessions to list, newest first (query parameters)."""

    flow_id: UUID | None = None
    conversation_id: UUID | None = None
    status: SessionStatus | None = None
    before: datetime | None = Field(default=None, description="Sessions started before this")
    limit: int = Field(default=100, ge=1, le=500)


async def sessions(
    *, conn: Connection, organization_id: UUID, filter: SessionFilter
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""
        select {SESSION_COLUMNS} from public.bot_sessions
         where organization_id = $1 and ($2::uuid is null or flow_id = $2)
           and ($3::uuid is null or conversation_id = $3) and ($4::text is null or status = $4)
           and ($5::timestamptz is null or started_at < $5)
         order by started_at desc, id limit $6
        """,
        organization_id,
        filter.flow_id,
        filter.conversation_id,
        filter.status,
        filter.before,
        filter.limit,
    )
    return [dict(r) for r in rows]


async def session(*, conn: Connection, session_id: UUID) -> dict[str, Any]:
    return await fetch_found(
        conn,
        "No such bot session",
        f"select {SESSION_COLUMNS} from public.bot_sessions where id = $1",
        session_id,
    )


async def steps(*, conn: Connection, session_id: UUID) -> list[dict[str, Any]]:
    found = await session(conn=conn, session_id=session_id)
    rows = await conn.fetch(
        f"select {STEP_COLUMNS} from public.bot_session_steps where organization_id = $1"
        " and session_id = $2 order by id limit 2000",
        found["organization_id"],
        session_id,
    )
    return [dict(r) for r in rows]
