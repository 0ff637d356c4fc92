"""Starting a campaign: its audience is snapshotted into campaign_recipients.

One INSERT … SELECT of the compiled audience filter, in the same transaction as
the campaign's move to `running`, so the recipient list is fixed at start: edits
to contacts afterwards never change who receives it. Contacts without an address
on the campaign's channel, or opted out of that channel, are inserted as
`excluded` with the reason, so the counts account for every contact matched.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

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


async def start_campaign(
    *, conn: Connection, organization_id: UUID, campaign_id: UUID
) -> dict[str, Any]:
    """Snapshot the audience and mark the campaign running; the new counts.

    Raises Unprocessable (and saves nothing) when the audience matches no contact.
    """
    async with conn.transaction():
        campaign = await conn.fetchrow(
            "select c.status, c.audience, a.channel::text as channel"
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
        params = Params(organization_id, campaign_id, campaign["channel"])
        condition = await audience_condition(
            conn=conn, organization_id=organization_id, audience=campaign["audience"], params=params
        )
        fallback = _FALLBACK.get(campaign["channel"], "null")
        counts = await conn.fetchrow(
            f"""
            with matched as (
              select c.id, c.opted_out_channels, coalesce(
                (select i.external_id from public.contact_identities i
                  where i.organization_id = c.organization_id and i.contact_id = c.id
                    and i.channel = $3::public.channel
                  order by i.created_at limit 1),
                {fallback}) as address
                from public.contacts c
               where c.organization_id = $1 and {condition}
            ), inserted as (
              insert into public.campaign_recipients
                (organization_id, campaign_id, contact_id, address, status, exclusion_reason)
              select $1, $2, m.id, m.address, case when r.reason is null then 'queued'
                                                   else 'excluded' end, r.reason
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
