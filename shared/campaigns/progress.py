"""A campaign's progress: its recipients counted by status, and replies; broadcast on
the organization's Realtime topic as `campaign.progress`."""

from __future__ import annotations

from uuid import UUID

from shared.db import Connection

STATUSES = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",
    "excluded",
    "cancelled",
)
# Every status above, and `replied`: recipients who answered (any status).
COUNTS = (*STATUSES, "replied")


async def progress_of(conn: Connection, campaign_ids: list[UUID]) -> dict[UUID, dict[str, int]]:
    """Each campaign's recipients by status, and how many replied (every key present),
    in one query."""
    rows = await conn.fetch(
        "select campaign_id, status, count(*)::int as n, count(replied_at)::int as replied"
        " from public.campaign_recipients where campaign_id = any($1::uuid[])"
        " group by campaign_id, status",
        campaign_ids,
    )
    counts = {c: dict.fromkeys(COUNTS, 0) for c in campaign_ids}
    for r in rows:
        counts[r["campaign_id"]][r["status"]] = r["n"]
        counts[r["campaign_id"]]["replied"] += r["replied"]
    return counts


async def progress(conn: Connection, campaign_id: UUID) -> dict[str, int]:
    return (await progress_of(conn, [campaign_id]))[campaign_id]


async def broadcast_progress(conn: Connection, organization_id: UUID, campaign_id: UUID) -> None:
    """One Realtime event on the organization's inbox topic."""
    status = await conn.fetchval("select status from public.campaigns where id = $1", campaign_id)
    await conn.execute(
        "select realtime.send($1::jsonb, 'campaign.progress', $2, true)",
        {
            "campaign_id": str(campaign_id),
            "status": status,
            "counts": await progress(conn, campaign_id),
        },
        f"org:{organization_id}:inbox",
    )
