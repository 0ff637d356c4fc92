"""A small organization with a fortnight around a DST change of everything the metrics
read (conversations and their status changes, messages, SLA clocks measured with
business hours, deals through their stages, a campaign with replies, contacts), and a
second organization of the same shape that must never show up. Random, seeded."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from shared.db import Connection
from shared.sla.hours import business_seconds
from shared.sla.inputs import schedule_of
from tests.support import make_channel_account, make_org, make_user, member
from tests.support_crm import default_pipeline, stages_of

TIMEZONE = "America/New_York"  # falls back on 1 Nov 2026
START, END = date(2026, 10, 25), date(2026, 11, 7)
# instants from two days before the window to two days after it
FIRST = datetime(2026, 10, 23, tzinfo=UTC)
SPAN = int((datetime(2026, 11, 10, tzinfo=UTC) - FIRST).total_seconds())
HOURS = {
    "timezone": TIMEZONE,
    "weekly": {
        d: [{"start": "09:00", "end": "17:00"}] for d in ("mon", "tue", "wed", "thu", "fri")
    },
    "holidays": [],
}


@dataclass
class Org:
    id: UUID
    owner: UUID
    manager: UUID
    agents: list[UUID]
    accounts: dict[str, UUID]
    pipeline: UUID
    stages: dict[str, UUID]
    conversations: list[UUID] = field(default_factory=list)


def moment(rng: random.Random) -> datetime:
    return FIRST + timedelta(seconds=rng.randrange(SPAN))


async def build_org(db: Connection, seed: int) -> Org:
    rng = random.Random(seed)
    owner = await make_user(db)
    org_id = await make_org(db, owner)
    await db.execute(
        "update public.organizations set timezone = $2 where id = $1", org_id, TIMEZONE
    )
    manager = await member(db, org_id, "manager")
    agents = [await member(db, org_id, "agent") for _ in range(2)]
    accounts = {
        "whatsapp": await make_channel_account(db, org_id, "whatsapp"),
        "telegram": await make_channel_account(db, org_id, "telegram"),
    }
    pipeline = await default_pipeline(db, org_id)
    org = Org(org_id, owner, manager, agents, accounts, pipeline, await stages_of(db, pipeline))
    people = [None, *agents, manager]
    # contacts, some with an identity (their channel) and a source
    contacts = []
    for i in range(30):
        contact = await db.fetchval(
            "insert into public.contacts (organization_id, name, source, created_at, assignee_id)"
            " values ($1, $2, $3, $4, $5) returning id",
            org_id,
            f"Contact {i}",
            rng.choice([None, "ads", "referral"]),
            moment(rng),
            rng.choice(people),
        )
        if rng.random() < 0.7:
            channel = rng.choice(list(accounts))
            await db.execute(
                "insert into public.contact_identities (organization_id, contact_id, channel,"
                " external_id) values ($1, $2, $3, $4)",
                org_id,
                contact,
                channel,
                f"{seed}-{i}",
            )
        contacts.append(contact)
    # conversations, then status changes, their times set as they would have happened
    for i in range(40):
        created = moment(rng)
        conversation = await db.fetchval(
            "insert into public.conversations (organization_id, contact_id, channel_account_id,"
            " assignee_id, created_at, thread_key) values ($1, $2, $3, $4, $5, $6) returning id",
            org_id,
            contacts[i % 30],
            rng.choice(list(accounts.values())),
            rng.choice(people),
            created,
            str(i),
        )
        org.conversations.append(conversation)
        at = created
        for status in rng.choice(
            [[], ["resolved"], ["pending", "resolved", "open"], ["resolved", "open", "resolved"]]
        ):
            at += timedelta(hours=rng.randint(1, 60))
            await db.execute(
                "update public.conversations set status = $2 where id = $1", conversation, status
            )
            await db.execute(
                "update public.conversation_transitions set at = $2 where id ="
                " (select max(id) from public.conversation_transitions where conversation_id = $1)",
                conversation,
                at,
            )
    await _messages(db, org, rng)
    await _clocks(db, org, rng)
    await _deals(db, org, rng, contacts)
    await _campaign(db, org, rng, contacts)
    return org


async def _messages(db: Connection, org: Org, rng: random.Random) -> None:
    rows = []
    for _ in range(300):
        conversation = rng.choice(org.conversations)
        inbound = rng.random() < 0.5
        sender = "contact" if inbound else rng.choice(["user", "user", "user", "bot"])
        rows.append(
            (
                conversation,
                "inbound" if inbound else "outbound",
                sender,
                rng.choice([*org.agents, org.manager]) if sender == "user" else None,
                "received" if inbound else "sent",
                moment(rng),
            )
        )
    insert = (
        "insert into public.messages (organization_id, conversation_id, channel_account_id,"
        " direction, sender_type, sender_id, body, status, created_at)"
        " select $1, c.id, c.channel_account_id, x.direction::public.message_direction,"
        " x.sender::public.sender_type, x.sender_id, 'hi', x.status::public.message_status, x.at"
        " from unnest($2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[],"
        " $7::timestamptz[]) x(conversation, direction, sender, sender_id, status, at)"
        " join public.conversations c on c.id = x.conversation"
    )
    # one statement of many rows (the statement trigger groups them) and rows one by one
    half = len(rows) // 2
    await db.execute(insert, org.id, *map(list, zip(*rows[:half], strict=True)))
    for row in rows[half:]:
        await db.execute(insert, org.id, *([v] for v in row))
    # a few deleted, one moved: the rollup follows
    await db.execute(
        "delete from public.messages where id in (select id from public.messages"
        " where organization_id = $1 order by id limit 7)",
        org.id,
    )
    await db.execute(
        "update public.messages set created_at = created_at - interval '3 days'"
        " where id = (select id from public.messages where organization_id = $1 order by id desc"
        " limit 1)",
        org.id,
    )


async def _clocks(db: Connection, org: Org, rng: random.Random) -> None:
    schedule = schedule_of(HOURS)
    for conversation in org.conversations:
        for kind in ("first_response", "resolution", "next_response"):
            if rng.random() < 0.2:
                continue
            started = moment(rng)
            stopped = started + timedelta(seconds=rng.randint(60, 3 * 86400))
            outcome = rng.choice(["met", "met", "breached", "cancelled"])
            due = None if rng.random() < 0.2 else started + timedelta(hours=4)
            await db.execute(
                "insert into public.sla_clocks (organization_id, conversation_id, kind,"
                " business_hours_only, started_at, due_at, stopped_at, outcome, wall_seconds,"
                " business_seconds) values ($1, $2, $3, true, $4, $5, $6, $7, $8, $9)",
                org.id,
                conversation,
                kind,
                started,
                due,
                stopped,
                outcome,
                int((stopped - started).total_seconds()),
                business_seconds(schedule, started, stopped),
            )


async def _deals(db: Connection, org: Org, rng: random.Random, contacts: list[UUID]) -> None:
    s = org.stages
    path = ["Lead", "Qualified", "Proposal", "Negotiation"]
    for i in range(40):
        deal = await db.fetchval(
            "insert into public.deals (organization_id, title, value, pipeline_id, stage_id,"
            " assignee_id, created_at, expected_close_date, contact_id)"
            " values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning id",
            org.id,
            f"Deal {i}",
            rng.choice([None, 100, 250.5, 1000]),
            org.pipeline,
            s[rng.choice(path[:2])],
            rng.choice([None, *org.agents]),
            moment(rng),
            rng.choice([None, START + timedelta(days=rng.randint(-20, 80))]),
            contacts[i % 30],
        )
        for stage in rng.sample(path, rng.randint(0, 3)):
            await db.execute("update public.deals set stage_id = $2 where id = $1", deal, s[stage])
        end = rng.random()
        if end < 0.25:
            await db.execute(
                "update public.deals set stage_id = $2, won_at = $3 where id = $1",
                deal,
                s["Closed Won"],
                moment(rng),
            )
        elif end < 0.5:
            await db.execute(
                "update public.deals set stage_id = $2, lost_at = $3, lost_reason = $4"
                " where id = $1",
                deal,
                s["Closed Lost"],
                moment(rng),
                rng.choice([None, "price", "timing"]),
            )


async def _campaign(db: Connection, org: Org, rng: random.Random, contacts: list[UUID]) -> None:
    for n in range(2):
        campaign = await db.fetchval(
            "insert into public.campaigns (organization_id, channel_account_id, name, body,"
            " status, started_at) values ($1, $2, $3, 'Hello', 'running', $4) returning id",
            org.id,
            org.accounts["whatsapp"],
            f"Campaign {n}",
            moment(rng),
        )
        for contact in rng.sample(contacts, 12):
            status = rng.choice(["queued", "sent", "delivered", "read", "failed", "excluded"])
            message = None
            sent_at = None
            if status in ("sent", "delivered", "read"):
                sent_at = moment(rng)
                conversation = rng.choice(org.conversations)
                message = await db.fetchval(
                    "insert into public.messages (organization_id, conversation_id,"
                    " channel_account_id, direction, sender_type, body, status, created_at)"
                    " select organization_id, id, channel_account_id, 'outbound', 'system',"
                    " 'Hello', 'sent', $2 from public.conversations where id = $1 returning id",
                    conversation,
                    sent_at,
                )
            await db.execute(
                "insert into public.campaign_recipients (organization_id, campaign_id, contact_id,"
                " status, exclusion_reason, message_id, sent_at, delivered_at, read_at, failed_at)"
                " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                org.id,
                campaign,
                contact,
                status,
                "opted_out" if status == "excluded" else None,
                message,
                sent_at,
                sent_at if status in ("delivered", "read") else None,
                sent_at if status == "read" else None,
                moment(rng) if status == "failed" else None,
            )


async def raw(db: Connection, org: UUID) -> dict[str, list[dict[str, Any]]]:
    """Every raw row the brute force reads, by table."""
    tables = {
        "transitions": "select t.*, a.channel::text as channel"
        " from public.conversation_transitions t"
        " join public.channel_accounts a on a.id = t.channel_account_id"
        " where t.organization_id = $1",
        "messages": "select m.*, a.channel::text as channel from public.messages m"
        " join public.channel_accounts a on a.id = m.channel_account_id"
        " where m.organization_id = $1",
        "clocks": "select k.*, c.assignee_id, a.channel::text as channel from public.sla_clocks k"
        " join public.conversations c on c.id = k.conversation_id"
        " join public.channel_accounts a on a.id = c.channel_account_id"
        " where k.organization_id = $1",
        "conversations": "select * from public.conversations where organization_id = $1",
        "deals": "select * from public.deals where organization_id = $1",
        "changes": "select * from public.deal_stage_changes where organization_id = $1",
        "stages": "select * from public.stages where organization_id = $1",
        "campaigns": "select * from public.campaigns where organization_id = $1",
        "recipients": "select * from public.campaign_recipients where organization_id = $1",
        "contacts": "select c.*, (select i.channel::text from public.contact_identities i"
        " where i.contact_id = c.id order by i.created_at, i.id limit 1) as channel"
        " from public.contacts c where c.organization_id = $1",
    }
    return {name: [dict(r) for r in await db.fetch(sql, org)] for name, sql in tables.items()}


def bounds_of(zone: str) -> tuple[datetime, datetime]:
    """The window's first and (exclusive) last instants in `zone`."""
    from tests.shared.dashboards.brute import bounds

    return bounds(zone, START, END)
