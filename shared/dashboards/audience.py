"""Campaign and contact metrics.

Campaigns (started in the range, else created in it) are measured over their
recipients (excluded ones aside):
  sent rate        sent ÷ recipients          failed rate     failed ÷ recipients
  delivered rate   delivered ÷ sent           read rate       read ÷ sent
  replied rate     replied ÷ sent: a recipient replied when an inbound message came into
                   the conversation of the campaign's message after that message. This is
                   inferred from the messages; recipients do not record replies yet.
Contacts: new contacts by source and by channel (the channel of their first identity).
"""

from __future__ import annotations

from shared.dashboards.sql import Dim, Query

RATES = {
    "campaign_sent_rate": ("sent", "targeted"),
    "campaign_delivered_rate": ("delivered", "sent"),
    "campaign_read_rate": ("read", "sent"),
    "campaign_failed_rate": ("failed", "targeted"),
    "campaign_replied_rate": ("replied", "sent"),
}

_REPLIED = """exists (
  select 1 from public.messages m join public.messages i
    on i.organization_id = m.organization_id and i.conversation_id = m.conversation_id
   and i.created_at > m.created_at and i.direction = 'inbound'
   where m.organization_id = r.organization_id and m.id = r.message_id)"""


def campaign_rate(name: str):  # type: ignore[no-untyped-def]
    part, whole = RATES[name]

    def build(q: Query) -> str:
        replied = _REPLIED if part == "replied" else "false"
        dims = {"campaign": Dim("c.id::text")}
        dim = dims[q.spec.dimension] if q.spec.dimension else Dim("null::text")
        at = "coalesce(c.started_at, c.created_at)"
        return f"""
        select {q.bucket(at)} as bucket, {dim.key} as key,
               (sum(s.{part})::float8 / nullif(sum(s.{whole}), 0)) as value
          from public.campaigns c
          cross join lateral (
            select count(*) as targeted,
                   count(r.sent_at) as sent,
                   count(r.delivered_at) as delivered,
                   count(r.read_at) as read,
                   count(*) filter (where r.status = 'failed') as failed,
                   count(*) filter (where r.sent_at is not null and {replied}) as replied
              from public.campaign_recipients r
             where r.organization_id = c.organization_id and r.campaign_id = c.id
               and r.status <> 'excluded') s
         where c.organization_id = $1::uuid and {q.in_range(at)}
         group by 1, 2
        """

    build.__doc__ = f"{part} ÷ {whole} over the campaigns' recipients"
    return build


CONTACT_DIMS = {
    "source": Dim("coalesce(c.source, '(none)')"),
    "channel": Dim(
        "coalesce((select i.channel::text from public.contact_identities i"
        " where i.organization_id = c.organization_id and i.contact_id = c.id"
        " order by i.created_at, i.id limit 1), '(none)')"
    ),
    "agent": Dim("c.assignee_id::text"),
}


def new_contacts(q: Query) -> str:
    where = ["c.organization_id = $1::uuid", q.in_range("c.created_at"), q.filter()]
    if q.spec.dimension == "agent":
        where += ["c.assignee_id is not null", q.only_user("c.assignee_id")]
    return q.grouped(
        source="public.contacts c",
        where=where,
        ts="c.created_at",
        value="count(*)",
        dims=CONTACT_DIMS,
    )
