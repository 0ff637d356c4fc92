"""Dispatching a running campaign: exactly once per recipient, within the account's rate.

A batch is claimed in one transaction: the queued recipients are locked with
FOR UPDATE SKIP LOCKED (so concurrent dispatchers take disjoint rows), each gets
its outbound message inserted `queued`, and moves queued → sending with that
message's id. The provider call then goes through the inbox's send path
(shared/inbox/outbound.deliver), whose own queued → sending claim on the message
lets only one caller ever send it. A dispatcher killed after the claim leaves
recipients `sending` with a `queued` message: the next run resumes exactly those,
and the message claim still stops a second copy. Outcomes reach the recipient
through the messages' status trigger (the migration), webhooks included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared.campaigns.rate import rate_of, reserve
from shared.campaigns.snapshot import start_campaign
from shared.channels.base import OutboundMessage
from shared.channels.registry import channel_named
from shared.channels.whatsapp.templates import TemplateSend, prepare_send
from shared.db import Connection
from shared.errors import AppError
from shared.inbox.accounts import load_account, webhook_url
from shared.inbox.outbound import MESSAGE_COLUMNS, Outbound, deliver
from shared.runtime import Runtime
from shared.templates import whatsapp as wa_templates

STATUSES = ("queued", "sending", "sent", "delivered", "read", "failed", "excluded")
# WhatsApp's spam rate limit (the account's messaging limit): sending on is futile.
PAUSE_CODES = frozenset({"131048"})


@dataclass
class Clock:
    """Time for the rate cap; tests pass their own to move it without sleeping."""

    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep


@dataclass(frozen=True)
class Campaign:
    id: UUID
    organization_id: UUID
    channel_account_id: UUID
    channel: str
    settings: dict[str, Any]
    body: str | None
    template: dict[str, Any] | None


async def due_campaigns(conn: Connection) -> list[Campaign]:
    rows = await conn.fetch(
        "select c.id, c.organization_id, c.channel_account_id, a.channel::text as channel,"
        " a.settings, c.body, c.template from public.campaigns c"
        " join public.channel_accounts a on a.id = c.channel_account_id"
        " where c.status = 'running' order by c.started_at"
    )
    return [Campaign(**dict(r)) for r in rows]


async def claim(
    conn: Connection, campaign: Campaign, *, content: str, content_type: str, limit: int
) -> list[dict[str, Any]]:
    """Lock up to `limit` queued recipients, queue their messages, mark them sending."""
    rows = await conn.fetch(
        "select id, contact_id, address from public.campaign_recipients"
        " where campaign_id = $1 and status = 'queued' order by id limit $2"
        " for update skip locked",
        campaign.id,
        limit,
    )
    if not rows:
        return []
    contacts = [r["contact_id"] for r in rows]
    await conn.execute(
        "insert into public.conversations (organization_id, contact_id, channel_account_id)"
        " select $1, unnest($3::uuid[]), $2"
        " on conflict (organization_id, channel_account_id, contact_id, thread_key)"
        " where status <> 'resolved' do nothing",
        campaign.organization_id,
        campaign.channel_account_id,
        contacts,
    )
    messages = await conn.fetch(
        f"""
        insert into public.messages (organization_id, conversation_id, channel_account_id,
          direction, sender_type, content_type, body, metadata, status)
        select v.organization_id, v.id, v.channel_account_id, 'outbound', 'system',
               $4::public.content_type, $5, jsonb_build_object('campaign_id', $3::uuid), 'queued'
          from public.conversations v
         where v.organization_id = $1 and v.channel_account_id = $2
           and v.contact_id = any($6::uuid[]) and v.thread_key = '' and v.status <> 'resolved'
        returning {MESSAGE_COLUMNS},
          (select contact_id from public.conversations where id = conversation_id) as contact_id
        """,
        campaign.organization_id,
        campaign.channel_account_id,
        campaign.id,
        content_type,
        content,
        contacts,
    )
    by_contact = {m["contact_id"]: m for m in messages}
    await conn.execute(
        "update public.campaign_recipients r set status = 'sending', message_id = m.id,"
        " attempts = r.attempts + 1, updated_at = now()"
        " from unnest($2::uuid[], $3::uuid[]) as m(contact_id, id)"
        " where r.campaign_id = $1 and r.contact_id = m.contact_id",
        campaign.id,
        list(by_contact),
        [m["id"] for m in by_contact.values()],
    )
    return [
        {"address": r["address"], "message": by_contact[r["contact_id"]]}
        for r in rows
        if r["contact_id"] in by_contact
    ]


async def orphans(
    conn: Connection, campaign: Campaign, *, older_than: float
) -> list[dict[str, Any]]:
    """Recipients a killed dispatcher claimed but never sent: their message is still queued."""
    rows = await conn.fetch(
        "select r.address, m.id, m.organization_id from public.campaign_recipients r"
        " join public.messages m on m.id = r.message_id"
        " where r.campaign_id = $1 and r.status = 'sending' and m.status = 'queued'"
        "   and m.created_at < now() - make_interval(secs => $2)"
        " order by r.id for update of r skip locked",
        campaign.id,
        older_than,
    )
    return [{"address": r["address"], "message": r} for r in rows]


def content_of(
    campaign: Campaign, template: dict[str, Any] | None
) -> tuple[str, str, dict[str, Any]]:
    """The text the inbox shows, its content type and the channel options."""
    if campaign.template is not None and template is not None:
        graph, text = prepare_send(template, TemplateSend.model_validate(campaign.template))
        return text, "template", {"template": graph}
    assert campaign.body is not None
    return campaign.body, "text", {}


async def dispatch(
    runtime: Runtime, *, batch: int = 100, clock: Clock | None = None
) -> dict[str, int]:
    """One pass over the running campaigns: resume orphans, then one batch each."""
    clock = clock or Clock()
    counts = {"sent": 0, "failed": 0, "paused": 0}
    await start_due(runtime, now=clock.now())
    async with runtime.db.service_tx() as conn:
        campaigns = await due_campaigns(conn)
    for campaign in campaigns:
        await _one_batch(runtime, campaign, batch=batch, clock=clock, counts=counts)
        async with runtime.db.service_tx() as conn:
            await broadcast_progress(conn, campaign.organization_id, campaign.id)
    return counts


async def run(
    runtime: Runtime, *, batch: int, seconds: float, clock: Clock | None = None
) -> dict[str, int]:
    """Dispatch passes until nothing is left to send or `seconds` have gone by (0: one
    pass), so a cron call each minute keeps campaigns moving at their accounts' rates."""
    started = time.monotonic()
    total = {"sent": 0, "failed": 0, "paused": 0}
    while True:
        counts = await dispatch(runtime, batch=batch, clock=clock)
        total = {k: total[k] + counts[k] for k in total}
        if not (counts["sent"] or counts["failed"]) or time.monotonic() - started >= seconds:
            return total


async def start_due(runtime: Runtime, *, now: datetime) -> None:
    """Start the scheduled campaigns whose time has come; one whose audience is now
    empty is cancelled with the reason."""
    async with runtime.db.service_tx() as conn:
        due = await conn.fetch(
            "select organization_id, id from public.campaigns"
            " where status = 'scheduled' and starts_at <= $1 order by starts_at",
            now,
        )
    for row in due:
        async with runtime.db.service_tx() as conn:
            try:
                await start_campaign(
                    conn=conn, organization_id=row["organization_id"], campaign_id=row["id"]
                )
            except AppError as exc:
                await conn.execute(
                    "update public.campaigns set status = 'cancelled', pause_reason = $2,"
                    " finished_at = now(), updated_at = now()"
                    " where id = $1 and status = 'scheduled'",
                    row["id"],
                    exc.message,
                )


async def progress(conn: Connection, campaign_id: UUID) -> dict[str, int]:
    """The campaign's recipients by status (every status present, zero or not)."""
    rows = await conn.fetch(
        "select status, count(*)::int as n from public.campaign_recipients"
        " where campaign_id = $1 group by status",
        campaign_id,
    )
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({r["status"]: r["n"] for r in rows})
    return counts


async def broadcast_progress(conn: Connection, organization_id: UUID, campaign_id: UUID) -> None:
    """One Realtime event per batch on the organization's inbox topic."""
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


async def _one_batch(
    runtime: Runtime, campaign: Campaign, *, batch: int, clock: Clock, counts: dict[str, int]
) -> None:
    settings = runtime.settings
    async with runtime.db.service_tx() as conn:
        template = None
        if campaign.template is not None:
            template = await wa_templates.find(
                conn=conn,
                channel_account_id=campaign.channel_account_id,
                name=str(campaign.template["name"]),
                language=str(campaign.template["language"]),
            )
        text, content_type, options = content_of(campaign, template)
        account = await load_account(conn=conn, account_id=campaign.channel_account_id)
        jobs = await orphans(conn, campaign, older_than=settings.claim_seconds / 2)
        jobs += await claim(
            conn, campaign, content=text, content_type=content_type, limit=batch - len(jobs)
        )
        if not jobs:
            await conn.execute(
                "update public.campaigns set status = 'completed', finished_at = now(),"
                " updated_at = now() where id = $1 and status = 'running'"
                " and not exists (select 1 from public.campaign_recipients r"
                "   left join public.messages m on m.id = r.message_id"
                "   where r.campaign_id = $1 and (r.status = 'queued' or m.status = 'queued'"
                "     or (m.status = 'sending' and m.send_deadline > now())))",
                campaign.id,
            )
            return
        rate = rate_of(channel=campaign.channel, settings=campaign.settings)
        slots = await reserve(
            conn=conn,
            channel_account_id=campaign.channel_account_id,
            count=len(jobs),
            rate=rate,
            now=clock.now(),
        )
    channel = channel_named(campaign.channel)
    callback = webhook_url(settings, campaign.channel, campaign.channel_account_id)
    for slot, job in zip(slots, jobs, strict=True):
        wait = (slot - clock.now()).total_seconds()
        if wait > 0:
            await clock.sleep(wait)
        outbound = OutboundMessage(
            to=job["address"], callback_url=callback, text=text, metadata=options
        )
        try:
            await deliver(runtime, Outbound(job["message"], channel, account, outbound), None)
            counts["sent"] += 1
        except AppError:
            counts["failed"] += 1
            if await _pause_if_limited(runtime, campaign, job["message"]["id"]):
                counts["paused"] += 1
                return


async def _pause_if_limited(runtime: Runtime, campaign: Campaign, message_id: UUID) -> bool:
    async with runtime.db.service_tx() as conn:
        code = await conn.fetchval(
            "select error ->> 'code' from public.messages where id = $1", message_id
        )
        if code not in PAUSE_CODES:
            return False
        await conn.execute(
            "update public.campaigns set status = 'paused', updated_at = now(),"
            " pause_reason = $2 where id = $1 and status = 'running'",
            campaign.id,
            f"WhatsApp messaging limit reached (error {code})",
        )
    return True
