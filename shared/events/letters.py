"""Finished deliveries for their organization's admins: dead letters, and replays.

Both run under the caller's RLS: admins read event_deliveries, and
app.replay_event_delivery checks the caller administers the delivery's organization.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shared.db import Connection

DELIVERY_COLUMNS = (
    "d.id, d.organization_id, d.event_id, e.event_type, d.consumer, d.target, d.status,"
    " d.attempts, d.due_at, d.last_error, d.created_at, d.finished_at"
)


async def dead_letters(
    *, conn: Connection, organization_id: UUID, before: int | None, limit: int
) -> list[dict[str, Any]]:
    """An organization's dead deliveries, newest first (admins: RLS)."""
    rows = await conn.fetch(
        f"select {DELIVERY_COLUMNS} from public.event_deliveries d"
        " join public.outbox_events e on e.id = d.event_id"
        " where d.organization_id = $1 and d.status = 'dead'"
        " and ($2::bigint is null or d.id < $2)"
        " order by d.id desc limit $3",
        organization_id,
        before,
        limit,
    )
    return [dict(r) for r in rows]


async def replay(*, conn: Connection, delivery_id: int) -> dict[str, Any]:
    """Sends a finished delivery again from its first attempt (admins of its organization)."""
    await conn.execute("select app.replay_event_delivery($1)", delivery_id)
    row = await conn.fetchrow(
        f"select {DELIVERY_COLUMNS} from public.event_deliveries d"
        " join public.outbox_events e on e.id = d.event_id where d.id = $1",
        delivery_id,
    )
    assert row is not None
    return dict(row)
