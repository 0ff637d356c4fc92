"""The audience snapshot: fixed at start, exclusions counted, an empty audience refused;
and the status timeline the messages' delivery statuses drive, out of order included."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from shared.campaigns.snapshot import start_campaign
from shared.db import Connection
from shared.errors import Conflict, Unprocessable
from tests.support import make_channel_account, make_contact, make_conversation, make_org, make_user

VIP = {"field": "name", "op": "starts_with", "value": "VIP"}


async def campaign(db: Connection, org: UUID, account: UUID, audience: Any = VIP) -> UUID:
    made: UUID = await db.fetchval(
        "insert into public.campaigns (organization_id, channel_account_id, name, body, audience)"
        " values ($1, $2, 'Spring sale', 'Hi!', $3) returning id",
        org,
        account,
        audience,
    )
    return made


async def recipients(db: Connection, campaign_id: UUID) -> dict[UUID, dict[str, Any]]:
    rows = await db.fetch(
        "select contact_id, address, status, exclusion_reason from public.campaign_recipients"
        " where campaign_id = $1",
        campaign_id,
    )
    return {r["contact_id"]: dict(r) for r in rows}


@pytest.fixture
async def world(db: Connection) -> dict[str, Any]:
    org = await make_org(db, await make_user(db))
    account = await make_channel_account(db, org, channel="whatsapp")
    phone = await make_contact(db, org, name="VIP phone", phone="+4915112345678")
    opted = await make_contact(
        db, org, name="VIP opted", phone="+4915112345679", opted_out_channels=["whatsapp"]
    )
    none = await make_contact(db, org, name="VIP nobody")
    identity = await make_contact(db, org, name="VIP identity")
    await db.execute(
        "insert into public.contact_identities (organization_id, contact_id, channel, external_id)"
        " values ($1, $2, 'whatsapp', '4917000000001')",
        org,
        identity,
    )
    other = await make_contact(db, org, name="Regular", phone="+4915112345670")
    return {
        "org": org,
        "account": account,
        "phone": phone,
        "opted": opted,
        "none": none,
        "identity": identity,
        "other": other,
    }


async def test_start_snapshots_the_audience_with_exclusions(
    db: Connection, world: dict[str, Any]
) -> None:
    org, account = world["org"], world["account"]
    made = await campaign(db, org, account)
    counts = await start_campaign(conn=db, organization_id=org, campaign_id=made)
    assert counts == {"recipients": 4, "excluded": 2}
    rows = await recipients(db, made)
    assert rows[world["phone"]]["status"] == "queued"
    assert rows[world["phone"]]["address"] == "+4915112345678"
    assert rows[world["identity"]]["address"] == "4917000000001"
    assert rows[world["opted"]]["exclusion_reason"] == "opted_out"
    assert rows[world["none"]]["exclusion_reason"] == "no_address"
    assert world["other"] not in rows
    stored = await db.fetchrow(
        "select status, recipient_count, excluded_count from public.campaigns where id = $1", made
    )
    assert dict(stored) == {"status": "running", "recipient_count": 4, "excluded_count": 2}

    # editing contacts after the start changes nothing about who receives it
    await db.execute("update public.contacts set name = 'VIP now' where id = $1", world["other"])
    await db.execute("update public.contacts set name = 'Gone' where id = $1", world["phone"])
    assert await recipients(db, made) == rows
    with pytest.raises(Conflict):
        await start_campaign(conn=db, organization_id=org, campaign_id=made)
    assert await recipients(db, made) == rows


async def test_an_empty_audience_is_refused_and_nothing_saved(
    db: Connection, world: dict[str, Any]
) -> None:
    org = world["org"]
    nobody = {"field": "name", "op": "eq", "value": "No such contact"}
    made = await campaign(db, org, world["account"], nobody)
    with pytest.raises(Unprocessable, match="matches no contact"):
        await start_campaign(conn=db, organization_id=org, campaign_id=made)
    assert await db.fetchval("select status from public.campaigns where id = $1", made) == "draft"
    assert await recipients(db, made) == {}


async def test_the_status_timeline_follows_the_message_never_backwards(
    db: Connection, world: dict[str, Any]
) -> None:
    org, account = world["org"], world["account"]
    made = await campaign(db, org, account)
    await start_campaign(conn=db, organization_id=org, campaign_id=made)
    conversation = await make_conversation(db, org, contact=world["phone"], account=account)
    message = await db.fetchval(
        "insert into public.messages (organization_id, conversation_id, channel_account_id,"
        " direction, sender_type, body, status, metadata) values ($1, $2, $3, 'outbound',"
        " 'system', 'Hi!', 'sending', jsonb_build_object('campaign_id', $4::uuid))"
        " returning id",
        org,
        conversation,
        account,
        made,
    )
    await db.execute(
        "update public.campaign_recipients set status = 'sending', message_id = $2,"
        " attempts = 1 where campaign_id = $1 and contact_id = $3",
        made,
        message,
        world["phone"],
    )

    async def step(status: str) -> dict[str, Any]:
        await db.execute(
            "update public.messages set status = $2::public.message_status,"
            " provider_message_id = coalesce(provider_message_id, 'wamid.X') where id = $1",
            message,
            status,
        )
        row = await db.fetchrow(
            "select status, provider_message_id, sent_at, delivered_at, read_at"
            " from public.campaign_recipients where message_id = $1",
            message,
        )
        return dict(row)

    sent = await step("sent")
    assert sent["status"] == "sent" and sent["provider_message_id"] == "wamid.X"
    read = await step("read")  # delivered never arrived first: read implies it
    assert read["status"] == "read" and read["delivered_at"] is not None
    late = await step("delivered")  # a late delivered changes nothing
    assert late == read
