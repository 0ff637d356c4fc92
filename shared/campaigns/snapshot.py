"""Starting a campaign: its audience is snapshotted into campaign_recipients.

One INSERT … SELECT of the compiled audience filter, in the same transaction as
the campaign's move to `running`, so the recipient list is fixed at start: edits
to contacts afterwards never change who receives it. Contacts without an address
on the campaign's channel, or opted out of that channel, are inserted as
`excluded` with the reason, so the counts account for every contact matched.

A `local_time` campaign sends its starts_at's wall-clock time in each contact's own
timezone: the contact's `timezone` custom field when it names an IANA zone, else the
campaign's. Each recipient gets its `due_at` in the snapshot; the campaign starts at
the earliest instant that wall-clock time can come anywhere (UTC+14), and a
recipient whose time has already passed by then (a contact who moved zones since the
campaign was checked) is due at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from shared.crm.entities import CONTACTS
from shared.crm.records import catalog_of
from shared.db import Connection
from shared.errors import Conflict, NotFound, Unprocessable
from shared.filters import compile_filter, parse_filter
from shared.sql import Params

# The contact's address on a channel: its identity there, else the contact's own
# phone (WhatsApp, SMS) or email; null when it has none.
_FALLBACK = {"whatsapp": "c.phone", "sms": "c.phone", "email": "c.email"}

STARTABLE = ("draft", "scheduled")
# Each contact's zone, `z.name` (null: not a zone name): the known names read once.
ZONES = "zones as materialized (select name from pg_catalog.pg_timezone_names)"
ZONE_JOIN = "left join zones z on z.name = c.custom_fields ->> 'timezone'"
# The earliest any wall-clock time comes: in the zones 14 hours ahead of UTC.
EARLIEST_ZONE = "Etc/GMT-14"


def wall_time(*, starts_at: datetime, timezone: str) -> datetime:
    """starts_at's wall-clock time in the campaign's timezone (naive)."""
    return starts_at.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)


async def start_campaign(
    *, conn: Connection, organization_id: UUID, campaign_id: UUID
) -> dict[str, Any]:
    """Snapshot the audience and mark the campaign running; the new counts.

    Raises Unprocessable (and saves nothing) when the audience matches no contact.
    """
    async with conn.transaction():
        campaign = await conn.fetchrow(
            "select c.status, c.audience, a.channel::text as channel, c.local_time,"
            " c.starts_at, c.timezone"
            " from public.campaigns c join public.channel_accounts a"
            "   on a.organization_id = c.organization_id and a.id = c.channel_account_id"
            " where c.organization_id = $1 and c.id = $2 for update of c",
            organization_id,
            campaign_id,
        )
        if campaign is None:
            raise NotFound("campaign not found")
        if campaign["status"] not in STARTABLE:
            raise Conflict(
                f"campaign is {campaign['status']}; only a draft or scheduled one starts"
            )
        wall = (
            wall_time(starts_at=campaign["starts_at"], timezone=campaign["timezone"])
            if campaign["local_time"]
            else None
        )
        params = Params(
            organization_id, campaign_id, campaign["channel"], wall, campaign["timezone"]
        )
        condition = await audience_condition(
            conn=conn, organization_id=organization_id, audience=campaign["audience"], params=params
        )
        fallback = _FALLBACK.get(campaign["channel"], "null")
        counts = await conn.fetchrow(
            f"""
            with {ZONES if wall else "zones as (select null::text as name)"}, matched as (
              select c.id, c.opted_out_channels,
                $4::timestamp at time zone coalesce(z.name, $5) as due_at, coalesce(
                (select i.external_id from public.contact_identities i
                  where i.organization_id = c.organization_id and i.contact_id = c.id
                    and i.channel = $3::public.channel
                  order by i.created_at limit 1),
                {fallback}) as address
                from public.contacts c {ZONE_JOIN if wall else "left join zones z on false"}
               where c.organization_id = $1 and {condition}
            ), inserted as (
              insert into public.campaign_recipients
                (organization_id, campaign_id, contact_id, address, status, exclusion_reason,
                 due_at)
              select $1, $2, m.id, m.address, case when r.reason is null then 'queued'
                                                   else 'excluded' end, r.reason,
                     case when r.reason is null then m.due_at end
                from matched m
                cross join lateral (select case
                  when $3::public.channel = any (m.opted_out_channels) then 'opted_out'
                  when m.address is null then 'no_address' end as reason) r
              on conflict (campaign_id, contact_id) do nothing
              returning status
            )
            select count(*)::int as total,
                   count(*) filter (where status = 'excluded')::int as excluded
              from inserted
            """,
            *params.values,
        )
        assert counts is not None
        if counts["total"] == 0:
            raise Unprocessable("the campaign's audience matches no contact", code="empty_audience")
        await conn.execute(
            "update public.campaigns set status = 'running', started_at = now(),"
            " recipient_count = $3, excluded_count = $4, updated_at = now()"
            " where organization_id = $1 and id = $2",
            organization_id,
            campaign_id,
            counts["total"],
            counts["excluded"],
        )
    return {"recipients": counts["total"], "excluded": counts["excluded"]}


async def audience_condition(
    *, conn: Connection, organization_id: UUID, audience: Any, params: Params
) -> str:
    """The audience filter as a condition over contacts `c` (a 422 naming a bad filter)."""
    catalog = await catalog_of(conn=conn, organization_id=organization_id, entity=CONTACTS)
    return compile_filter(parse_filter(audience, catalog), catalog, params)


async def audience_size(*, conn: Connection, organization_id: UUID, audience: Any) -> int:
    params = Params(organization_id)
    condition = await audience_condition(
        conn=conn, organization_id=organization_id, audience=audience, params=params
    )
    size: int = await conn.fetchval(
        f"select count(*) from public.contacts c where c.organization_id = $1 and {condition}",
        *params.values,
    )
    return size


async def earliest_due(
    *, conn: Connection, organization_id: UUID, audience: Any, wall: datetime, timezone: str
) -> tuple[datetime, str, int] | None:
    """When `wall` first comes for the audience in its contacts' own zones: the instant,
    the zone, how many contacts are in it (None: the audience is empty)."""
    params = Params(organization_id, wall, timezone)
    condition = await audience_condition(
        conn=conn, organization_id=organization_id, audience=audience, params=params
    )
    row = await conn.fetchrow(
        f"with {ZONES} select $2::timestamp at time zone zone as due_at, zone, count(*)::int as n"
        f" from (select coalesce(z.name, $3) as zone from public.contacts c {ZONE_JOIN}"
        f"   where c.organization_id = $1 and {condition}) t"
        " group by zone order by 1 limit 1",
        *params.values,
    )
    return None if row is None else (row["due_at"], row["zone"], row["n"])
