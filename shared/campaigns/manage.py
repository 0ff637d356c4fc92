"""Creating, reading and steering campaigns (the public API's campaigns resource).

Everything a campaign needs is checked when it is created, so a bad one is a 422
naming the problem and nothing is stored: the channel account, the template and
its variables (WhatsApp accounts only), the syntax of the text or values and the
contact variables they use, the audience filter and that it matches someone, the
timezone and that a scheduled start lies in the future. Cancelling marks every
recipient not yet sent `cancelled` in the same transaction (a trigger).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, model_validator

from shared.campaigns.content import validate
from shared.campaigns.progress import progress, progress_of
from shared.campaigns.snapshot import audience_size, earliest_due, wall_time
from shared.channels.whatsapp.templates import TemplateSend, prepare_send
from shared.db import Connection
from shared.errors import Conflict, NotFound, Unprocessable
from shared.templates import whatsapp as wa_templates

COLUMNS = (
    "id, organization_id, channel_account_id, name, template, body as text, audience,"
    " starts_at, timezone, local_time, status, pause_reason, recipient_count, excluded_count,"
    " started_at, finished_at, created_at, updated_at"
)
RECIPIENT_COLUMNS = (
    "id, contact_id, address, status, exclusion_reason, due_at, message_id, provider_message_id,"
    " attempts, error, sent_at, delivered_at, read_at, failed_at, replied_at, updated_at"
)
# What each steering action moves from, and to.
MOVES: dict[str, tuple[frozenset[str], str]] = {
    "pause": (frozenset({"scheduled", "running"}), "paused"),
    "resume": (frozenset({"paused"}), "running"),
    "cancel": (frozenset({"draft", "scheduled", "running", "paused"}), "cancelled"),
}


class CampaignCreate(BaseModel):
    channel_account_id: UUID
    name: str = Field(min_length=1, max_length=200)
    template: TemplateSend | None = None
    text: str | None = Field(default=None, min_length=1, max_length=4096)
    audience: Any = Field(default=None, description="A filter over contacts; null: everyone")
    starts_at: datetime | None = Field(
        default=None, description="Null: a draft started by /start; else when to start"
    )
    timezone: str = Field(default="UTC", max_length=64, description="An IANA zone, for starts_at")
    local_time: bool = Field(
        default=False,
        description="Send at starts_at's wall-clock time in each contact's own timezone (its"
        " `timezone` custom field, else the campaign's); needs starts_at",
    )

    @model_validator(mode="after")
    def _one_content(self) -> CampaignCreate:
        if (self.template is None) == (self.text is None):
            raise ValueError("send a template or a text, not both")
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc
        if self.local_time and self.starts_at is None:
            raise ValueError("local_time needs starts_at, the wall-clock time to send at")
        if self.starts_at is not None and self.starts_at.tzinfo is None:
            self.starts_at = self.starts_at.replace(tzinfo=zone)
        return self


async def create_campaign(
    *, conn: Connection, organization_id: UUID, data: CampaignCreate, now: datetime | None = None
) -> dict[str, Any]:
    channel = await conn.fetchval(
        "select channel::text from public.channel_accounts where organization_id = $1 and id = $2",
        organization_id,
        data.channel_account_id,
    )
    if channel is None:
        raise Unprocessable("channel_account_id: no such channel account", code="unknown_account")
    validate(text=data.text, send=data.template)  # 422: bad syntax, a name it cannot fill
    if data.template is not None:
        if channel != "whatsapp":
            raise Unprocessable(
                f"Template campaigns are WhatsApp's; send text on {channel}",
                code="templates_not_supported",
            )
        template = await wa_templates.find(
            conn=conn,
            channel_account_id=data.channel_account_id,
            name=data.template.name,
            language=data.template.language,
        )
        prepare_send(template, data.template)  # a 422 for unknown or missing variables
    now = now or datetime.now(UTC)
    if data.starts_at is not None and data.starts_at <= now:
        raise Unprocessable("starts_at: the schedule lies in the past", code="schedule_in_past")
    if data.local_time:
        assert data.starts_at is not None
        wall = wall_time(starts_at=data.starts_at, timezone=data.timezone)
        first = await earliest_due(
            conn=conn,
            organization_id=organization_id,
            audience=data.audience,
            wall=wall,
            timezone=data.timezone,
        )
        if first is not None and first[0] <= now:
            raise Unprocessable(
                f"starts_at: {wall:%Y-%m-%d %H:%M} has already passed in {first[1]}"
                f" ({first[2]} contacts of the audience)",
                code="schedule_in_past",
            )
        size = 0 if first is None else 1
    else:
        size = await audience_size(
            conn=conn, organization_id=organization_id, audience=data.audience
        )
    if size == 0:
        raise Unprocessable("audience: the filter matches no contact", code="empty_audience")
    row = await conn.fetchrow(
        f"insert into public.campaigns (organization_id, channel_account_id, name, template,"
        f" body, audience, starts_at, timezone, local_time, status)"
        f" values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) returning {COLUMNS}",
        organization_id,
        data.channel_account_id,
        data.name,
        None if data.template is None else data.template.model_dump(mode="json"),
        data.text,
        data.audience,
        data.starts_at,
        data.timezone,
        data.local_time,
        "draft" if data.starts_at is None else "scheduled",
    )
    assert row is not None
    return await _with_progress(conn, dict(row))


async def _with_progress(conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
    return row | {"progress": await progress(conn, row["id"])}


async def list_campaigns(*, conn: Connection, organization_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"select {COLUMNS} from public.campaigns where organization_id = $1"
        " order by created_at desc, id limit 200",
        organization_id,
    )
    counts = await progress_of(conn, [r["id"] for r in rows])
    return [dict(r) | {"progress": counts[r["id"]]} for r in rows]


async def get_campaign(
    *, conn: Connection, organization_id: UUID, campaign_id: UUID
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"select {COLUMNS} from public.campaigns where organization_id = $1 and id = $2",
        organization_id,
        campaign_id,
    )
    if row is None:
        raise NotFound("No such campaign")
    return await _with_progress(conn, dict(row))


async def steer(
    *,
    conn: Connection,
    organization_id: UUID,
    campaign_id: UUID,
    action: str,
    reason: str | None = None,
) -> dict[str, Any]:
    """Pause, resume or cancel; a 409 naming the status it cannot move from."""
    sources, target = MOVES[action]
    current = await conn.fetchrow(
        "select status, started_at from public.campaigns"
        " where organization_id = $1 and id = $2 for update",
        organization_id,
        campaign_id,
    )
    if current is None:
        raise NotFound("No such campaign")
    if current["status"] not in sources:
        raise Conflict(f"A {current['status']} campaign cannot {action}", code="bad_status")
    if action == "resume" and current["started_at"] is None:
        target = "scheduled"
    await conn.execute(
        "update public.campaigns set status = $3, updated_at = now(),"
        " pause_reason = case when $3 in ('paused', 'cancelled')"
        "   then coalesce($4, 'by request') end,"
        " finished_at = case when $3 = 'cancelled' then now() else finished_at end"
        " where organization_id = $1 and id = $2",
        organization_id,
        campaign_id,
        target,
        reason,
    )
    return await get_campaign(conn=conn, organization_id=organization_id, campaign_id=campaign_id)


async def list_recipients(
    *,
    conn: Connection,
    organization_id: UUID,
    campaign_id: UUID,
    status: str | None,
    after: int | None,
    limit: int,
) -> dict[str, Any]:
    await get_campaign(conn=conn, organization_id=organization_id, campaign_id=campaign_id)
    rows = await conn.fetch(
        f"select {RECIPIENT_COLUMNS} from public.campaign_recipients"
        " where organization_id = $1 and campaign_id = $2"
        " and ($3::text is null or status = $3) and id > coalesce($4, 0)"
        " order by id limit $5",
        organization_id,
        campaign_id,
        status,
        after,
        limit + 1,
    )
    page = [dict(r) for r in rows[:limit]]
    more = len(rows) > limit
    return {"data": page, "next_after": page[-1]["id"] if more else None}
