"""The dispatcher's transactions: claim a batch, then take and record it wave by wave.

1. `claim_batch`: lock up to a batch of queued recipients (FOR UPDATE SKIP LOCKED, so
   concurrent dispatchers take disjoint rows), fill each one's message, insert the
   messages `queued`, move the recipients to `sending` with their message and the send
   slot reserved for them (shared/campaigns/rate.py). A recipient whose content cannot
   be filled (a missing variable, a closed reply window) fails here with the reason.
   Recipients left by a dead dispatcher — `sending`, message still `queued`, slot long
   past — are taken back into the batch with new slots.
2. `take`: just before a wave's first slot (a wave: 0.05 s of the batch's slots), its
   messages move queued → sending in one UPDATE … WHERE status = 'queued', only while
   the campaign runs. That per-row
   claim is what makes a second copy impossible: a message is sent only by the one
   transaction whose UPDATE moved it, and a message never goes back to queued. When
   the campaign was paused meanwhile, the messages fail as never sent and their
   recipients are queued again (so no sweeper fails them while it waits).
3. `record`: every outcome of a wave in one transaction (the messages' status
   trigger moves each recipient's log along).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from asyncpg import Record

from shared.campaigns.content import Content
from shared.campaigns.rate import reserve
from shared.db import Connection
from shared.errors import Unprocessable
from shared.inbox.outbound import MESSAGE_COLUMNS, NEVER_STARTED, Call
from shared.inbox.seam import attempts_sql


@dataclass(frozen=True)
class Job:
    contact_id: UUID
    message: Record
    address: str
    text: str
    options: dict[str, Any]
    slot: datetime


NOT_MADE = NEVER_STARTED.model_copy(
    update={"message": "The campaign was paused before this send", "code": "campaign_paused"}
)
_M_COLUMNS = ", ".join("m." + c.strip() for c in MESSAGE_COLUMNS.split(","))


async def _quiet(conn: Connection) -> None:
    # A campaign's messages are not broadcast one by one on the inbox topic (a broadcast
    # of 100,000 would flood every agent's client): `campaign.progress` tells of them,
    # and a conversation shows its message when it is read.
    await conn.execute("select set_config('connectgain.broadcast', 'off', true)")


async def _orphans(conn: Connection, campaign: Any, *, before: datetime, limit: int) -> list[Job]:
    rows = await conn.fetch(
        f"select r.contact_id, r.address, {_M_COLUMNS}"
        " from public.campaign_recipients r"
        " join public.messages m on m.organization_id = r.organization_id and m.id = r.message_id"
        # by the (organization_id, campaign_id, status, id) index: the few `sending` rows
        " where r.organization_id = $4 and r.campaign_id = $1 and r.status = 'sending'"
        "   and m.status = 'queued' and r.slot_at < $2"
        " order by r.id limit $3 for update of r skip locked",
        campaign.id,
        before,
        limit,
        campaign.organization_id,
    )
    return [
        Job(r["contact_id"], r, r["address"], r["body"], r["metadata"].get("options") or {}, before)
        for r in rows
    ]


async def claim_batch(
    conn: Connection,
    *,
    campaign: Any,
    content: Content,
    rate: float,
    limit: int,
    clock: Callable[[], datetime],
    lead: float,
    orphaned_after: float,
) -> tuple[list[Job], int]:
    """The batch's jobs, each with its slot (the first `lead` seconds from the time the
    slots are reserved), and how many recipients failed filling."""
    now = clock()
    await _quiet(conn)
    jobs = await _orphans(
        conn, campaign, before=now - timedelta(seconds=orphaned_after), limit=limit
    )
    # a local-time campaign's recipients as they come due, earliest first
    due = " and r.due_at <= $5 order by r.due_at, r.id" if campaign.local_time else " order by r.id"
    rows = await conn.fetch(
        "select r.id, r.contact_id, r.address, k.name, k.email, k.phone, k.custom_fields,"
        " case when $4 then (select max(v.last_inbound_at) from public.conversations v"
        "   where v.organization_id = r.organization_id and v.channel_account_id = $2"
        "     and v.contact_id = r.contact_id) end as last_inbound_at"
        " from public.campaign_recipients r"
        " join public.contacts k on k.organization_id = r.organization_id and k.id = r.contact_id"
        f" where r.campaign_id = $1 and r.status = 'queued'{due}"
        " limit $3 for update of r skip locked",
        campaign.id,
        campaign.channel_account_id,
        limit - len(jobs),
        content.text is not None,
        *([now] if campaign.local_time else []),
    )
    filled: dict[UUID, Any] = {}
    failed: dict[int, dict[str, Any]] = {}
    for row in rows:
        try:
            filled[row["contact_id"]] = (
                row,
                content.fill(contact=dict(row), last_inbound_at=row["last_inbound_at"], now=now),
            )
        except Unprocessable as exc:
            failed[row["id"]] = {
                "message": exc.message,
                "code": exc.code,
                "outcome": "not_sent",
                "retryable": False,
            }
    if failed:
        await conn.execute(
            "update public.campaign_recipients r set status = 'failed', error = f.error,"
            " failed_at = now(), attempts = r.attempts + 1, updated_at = now()"
            " from unnest($2::bigint[], $3::jsonb[]) as f(id, error)"
            " where r.campaign_id = $1 and r.id = f.id",
            campaign.id,
            list(failed),
            list(failed.values()),
        )
    if filled:
        jobs += await _queue(conn, campaign, filled)
    if not jobs:
        return [], len(failed)
    slots = await reserve(
        conn=conn,
        channel_account_id=campaign.channel_account_id,
        count=len(jobs),
        rate=rate,
        now=clock() + timedelta(seconds=lead),
    )
    jobs = [replace(j, slot=slot) for j, slot in zip(jobs, slots, strict=True)]
    await conn.execute(
        "update public.campaign_recipients r set status = 'sending', message_id = s.message_id,"
        " slot_at = s.slot, updated_at = now(),"
        # a resumed orphan was never sent: its one attempt is still the first
        " attempts = r.attempts + (r.status = 'queued')::int"
        " from unnest($2::uuid[], $3::uuid[], $4::timestamptz[]) as s(contact_id, message_id, slot)"
        " where r.campaign_id = $1 and r.contact_id = s.contact_id",
        campaign.id,
        [j.contact_id for j in jobs],
        [j.message["id"] for j in jobs],
        slots,
    )
    return jobs, len(failed)


async def _queue(conn: Connection, campaign: Any, filled: dict[UUID, Any]) -> list[Job]:
    """Insert the filled recipients' messages `queued` into their open conversations
    (opened where there is none)."""
    contacts = list(filled)
    threads = await conn.fetch(
        "with opened as ("
        "  insert into public.conversations (organization_id, contact_id, channel_account_id)"
        "  select $1, unnest($3::uuid[]), $2"
        "  on conflict (organization_id, channel_account_id, contact_id, thread_key)"
        "  where status <> 'resolved' do nothing returning id, contact_id)"
        " select id, contact_id from opened union all"
        " select v.id, v.contact_id from public.conversations v"
        "  where v.organization_id = $1 and v.channel_account_id = $2"
        "    and v.contact_id = any($3::uuid[]) and v.thread_key = '' and v.status <> 'resolved'",
        campaign.organization_id,
        campaign.channel_account_id,
        contacts,
    )
    contact_of = {t["id"]: t["contact_id"] for t in threads}
    conversation_of = {t["contact_id"]: t["id"] for t in threads}
    parts = [filled[c][1] for c in contacts]
    messages = await conn.fetch(
        f"insert into public.messages (organization_id, conversation_id, channel_account_id,"
        f" direction, sender_type, content_type, body, metadata, status)"
        f" select $1, m.conversation_id, $2, 'outbound', 'system',"
        f"   m.content_type::public.content_type, m.body, m.metadata, 'queued'"
        f" from unnest($3::uuid[], $4::text[], $5::text[], $6::jsonb[])"
        f"   as m(conversation_id, content_type, body, metadata)"
        f" returning {MESSAGE_COLUMNS}",
        campaign.organization_id,
        campaign.channel_account_id,
        [conversation_of[c] for c in contacts],
        [p.content_type for p in parts],
        [p.body for p in parts],
        [{"campaign_id": str(campaign.id), "options": p.options} for p in parts],
    )
    return [
        Job(
            contact,
            m,
            filled[contact][0]["address"],
            m["body"],
            filled[contact][1].options,
            m["created_at"],
        )
        for m in messages
        for contact in (contact_of[m["conversation_id"]],)
    ]


async def take(
    conn: Connection, *, campaign_id: UUID, jobs: list[Job], claim_seconds: float
) -> set[UUID]:
    """Claim the jobs' messages for sending (queued → sending), while the campaign runs;
    the ids claimed. Each one's claim lasts `claim_seconds` past its slot."""
    await _quiet(conn)
    rows = await conn.fetch(
        "update public.messages m set status = 'sending',"
        " send_deadline = j.slot + make_interval(secs => $4)"
        " from unnest($2::uuid[], $3::timestamptz[]) as j(id, slot)"
        " where m.id = j.id and m.status = 'queued'"
        "   and exists (select 1 from public.campaigns c where c.id = $1 and c.status = 'running')"
        " returning m.id",
        campaign_id,
        [j.message["id"] for j in jobs],
        [j.slot for j in jobs],
        claim_seconds,
    )
    taken = {r["id"] for r in rows}
    untaken = [j.message["id"] for j in jobs if j.message["id"] not in taken]
    if untaken and await conn.fetchval(
        "select status = 'paused' from public.campaigns where id = $1", campaign_id
    ):  # never sent: fail these messages, and queue their recipients again for a resume
        unsent = await conn.fetch(
            "update public.messages set status = 'failed', error = $2"
            " where id = any($1::uuid[]) and status = 'queued' returning id",
            untaken,
            NOT_MADE.sql(),
        )
        await requeue(conn, campaign_id=campaign_id, message_ids=[r["id"] for r in unsent])
    return taken


async def requeue(conn: Connection, *, campaign_id: UUID, message_ids: list[UUID]) -> None:
    """The recipients of these messages, never sent (the campaign paused), queued again."""
    if message_ids:
        await conn.execute(
            "update public.campaign_recipients set status = 'queued', message_id = null,"
            " slot_at = null, error = null, failed_at = null, attempts = attempts - 1,"
            " updated_at = now() where campaign_id = $1 and message_id = any($2::uuid[])",
            campaign_id,
            message_ids,
        )


async def record(
    conn: Connection,
    *,
    organization_id: UUID,
    channel_account_id: UUID,
    outcomes: list[tuple[UUID, Call]],
) -> None:
    """Every outcome of a wave at once, as app.record_send does one: a stored echo of
    the same provider id gives way, the conversation's last_message_at moves."""
    await _quiet(conn)
    ids = [message_id for message_id, _ in outcomes]
    provider_ids = [call.provider_id for _, call in outcomes]
    await conn.execute(
        "delete from public.messages m where m.organization_id = $1 and m.channel_account_id = $2"
        " and m.provider_message_id = any($3::text[]) and m.id <> all($4::uuid[])"
        " and (m.metadata ->> 'echo')::boolean",
        organization_id,
        channel_account_id,
        [p for p in provider_ids if p is not None],
        ids,
    )
    await conn.execute(
        "with o as (select * from unnest($2::uuid[], $3::text[], $4::text[], $5::jsonb[],"
        "   $6::text[]) as o(id, outcome, provider_id, error, attempts)),"
        " done as ("
        "  update public.messages m set status = o.outcome::public.message_status,"
        "   provider_message_id = o.provider_id, error = o.error,"
        "   sent_at = case when o.outcome = 'sent' then now() end,"
        "   metadata = m.metadata || jsonb_build_object('attempts', o.attempts::jsonb)"
        "  from o where m.organization_id = $1 and m.id = o.id returning m.conversation_id)"
        " update public.conversations c set last_message_at = now()"
        " where c.organization_id = $1 and c.id in (select conversation_id from done)",
        organization_id,
        ids,
        [call.outcome for _, call in outcomes],
        provider_ids,
        [None if call.error is None else call.error.sql() for _, call in outcomes],
        # as text: a list per row would read as one more array dimension
        [json.dumps(attempts_sql(call.attempts)) for _, call in outcomes],
    )
