"""Per recipient: contact variables filled (a missing one fails that recipient, not the
campaign), WhatsApp's 24-hour window for text campaigns, cancelling (every recipient
not yet sent cancelled, counted) and replies linked to the campaign.

One database for the module (each test its own organization and campaign)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
import respx

from shared.campaigns.claim import take
from shared.campaigns.manage import steer
from shared.campaigns.progress import progress
from shared.campaigns.runs import dispatch
from shared.campaigns.snapshot import start_campaign
from shared.db import Connection
from shared.runtime import Runtime
from tests.shared.campaigns.kit import (
    GRAPH,
    claim_now,
    finish_others,
    provider,
    running,
    statuses,
)
from tests.support import make_conversation, module_runtime_fixtures

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.xdist_group("test_campaign_content"),
]
runtime, db = module_runtime_fixtures()


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def _alone(db: Connection) -> None:
    await finish_others(db)


async def log(db: Connection, campaign: Any) -> dict[str, dict[str, Any]]:
    rows = await db.fetch(
        "select r.address, r.status, r.error, r.replied_at, r.message_id, m.body"
        " from campaign_recipients r left join messages m on m.id = r.message_id"
        " where r.campaign_id = $1",
        campaign,
    )
    return {r["address"]: dict(r) for r in rows}


@respx.mock
async def test_contact_variables_fill_each_message_and_a_missing_one_fails_only_its_recipient(
    runtime: Runtime, db: Connection
) -> None:
    plan = {"name": "greeting", "language": "en", "body": ["{{ contact.custom.plan }}"]}
    world = await running(db, 0, template=plan, start=False)
    await db.execute(
        "insert into custom_field_definitions (organization_id, entity, key, label, type)"
        " values ($1, 'contact', 'plan', 'Plan', 'text')",
        world["org"],
    )
    await db.execute(
        "insert into contacts (organization_id, name, phone, custom_fields) values"
        " ($1, 'VIP Pro', '+4915100000001', '{\"plan\": \"Pro\"}'),"
        " ($1, 'VIP None', '+4915100000002', '{}')",
        world["org"],
    )
    await start_campaign(conn=db, organization_id=world["org"], campaign_id=world["campaign"])
    sent: list[dict[str, Any]] = []
    respx.post(GRAPH).mock(side_effect=provider(sent))
    counts = await dispatch(runtime, batch=10)
    assert counts == {"sent": 1, "failed": 1, "paused": 0}
    assert [s["template"]["components"][0]["parameters"][0]["text"] for s in sent] == ["Pro"]
    rows = await log(db, world["campaign"])
    assert rows["+4915100000001"]["body"] == "Hi Pro, spring sale!"
    missing = rows["+4915100000002"]
    assert missing["status"] == "failed" and missing["message_id"] is None
    assert missing["error"]["code"] == "template_variable_missing"
    assert "plan" in missing["error"]["message"]
    status = await db.fetchval("select status from campaigns where id = $1", world["campaign"])
    assert status == "completed"


@respx.mock
async def test_a_text_campaign_on_whatsapp_sends_only_inside_the_24_hour_window(
    runtime: Runtime, db: Connection
) -> None:
    world = await running(db, 3, text="Hello {{ contact.first_name }}")
    recent, old, _never = world["contacts"]
    for contact, hours in ((recent, 2), (old, 30)):
        conversation = await make_conversation(
            db, world["org"], contact=contact, account=world["account"]
        )
        await db.execute(
            "update conversations set last_inbound_at = now() - make_interval(hours => $2)"
            " where id = $1",
            conversation,
            hours,
        )
    sent: list[dict[str, Any]] = []
    respx.post(GRAPH).mock(side_effect=provider(sent))
    await dispatch(runtime, batch=10)
    assert [(s["to"], s["text"]["body"]) for s in sent] == [("+4915100000000", "Hello VIP0")]
    rows = await log(db, world["campaign"])
    assert rows["+4915100000000"]["status"] == "sent"
    for closed in ("+4915100000001", "+4915100000002"):
        assert rows[closed]["status"] == "failed"
        assert rows[closed]["error"]["code"] == "outside_window"


async def test_cancel_marks_every_recipient_not_yet_sent_cancelled_in_its_transaction(
    runtime: Runtime, db: Connection
) -> None:
    world = await running(db, 4)
    _, jobs = await claim_now(runtime, world["campaign"], limit=1)  # ... and the dispatcher dies
    await db.execute(
        "update campaign_recipients set status = 'sent' where campaign_id = $1"
        " and id = (select max(id) from campaign_recipients where campaign_id = $1)",
        world["campaign"],
    )
    async with db.transaction():
        cancelled = await steer(
            conn=db, organization_id=world["org"], campaign_id=world["campaign"], action="cancel"
        )
        assert cancelled["progress"] | {} == cancelled["progress"] | {"cancelled": 3, "sent": 1}
    assert await statuses(db, world["campaign"]) == {"cancelled": 3, "sent": 1}
    message = await db.fetchrow(
        "select status::text, error from messages where id = $1", jobs[0].message["id"]
    )
    assert message["status"] == "failed" and message["error"]["code"] == "campaign_cancelled"
    with respx.mock:  # nothing is left to send
        assert await dispatch(runtime, batch=10) == {"sent": 0, "failed": 0, "paused": 0}


@respx.mock
async def test_a_reply_within_7_days_is_linked_to_the_campaign_and_counted(
    runtime: Runtime, db: Connection
) -> None:
    world = await running(db, 3)
    respx.post(GRAPH).mock(side_effect=provider([]))
    await dispatch(runtime, batch=10)
    rows = await db.fetch(
        "select r.contact_id, m.conversation_id, m.channel_account_id from campaign_recipients r"
        " join messages m on m.id = r.message_id where r.campaign_id = $1 order by r.id",
        world["campaign"],
    )
    await db.execute(
        "update campaign_recipients set sent_at = now() - interval '8 days'"
        " where campaign_id = $1 and contact_id = $2",
        world["campaign"],
        rows[2]["contact_id"],
    )

    async def reply(row: Any, conversation: Any = None) -> dict[str, Any]:
        metadata: dict[str, Any] = await db.fetchval(
            "insert into messages (organization_id, conversation_id, channel_account_id,"
            " direction, sender_type, body, status) values ($1, $2, $3, 'inbound', 'contact',"
            " 'Yes please', 'received') returning metadata",
            world["org"],
            conversation or row["conversation_id"],
            row["channel_account_id"],
        )
        return metadata

    assert (await reply(rows[0]))["campaign_id"] == str(world["campaign"])
    await reply(rows[0])  # a second reply keeps the first one's time
    assert "campaign_id" not in await reply(rows[2])  # sent 8 days before
    elsewhere = await db.fetchval(
        "insert into conversations (organization_id, contact_id, channel_account_id, thread_key)"
        " values ($1, $2, $3, 'other') returning id",
        world["org"],
        rows[1]["contact_id"],
        world["account"],
    )
    assert "campaign_id" not in await reply(rows[1], elsewhere)  # not where it was sent
    replied = await db.fetch(
        "select contact_id, replied_at, updated_at from campaign_recipients"
        " where campaign_id = $1 and replied_at is not null",
        world["campaign"],
    )
    assert [r["contact_id"] for r in replied] == [rows[0]["contact_id"]]
    counts = await progress(db, world["campaign"])
    assert counts["replied"] == 1 and counts["sent"] == 3
    assert replied[0]["replied_at"] <= replied[0]["updated_at"] + timedelta(seconds=1)


@respx.mock
async def test_a_batch_claimed_before_a_pause_is_queued_again_and_sent_once_on_resume(
    runtime: Runtime, db: Connection
) -> None:
    world = await running(db, 2)
    campaign, jobs = await claim_now(runtime, world["campaign"], limit=10)
    async with db.transaction():
        await steer(conn=db, organization_id=world["org"], campaign_id=campaign.id, action="pause")
    async with runtime.db.service_tx() as conn:
        assert await take(conn, campaign_id=campaign.id, jobs=jobs, claim_seconds=60) == set()
    assert await statuses(db, campaign.id) == {"queued": 2}
    failed = await db.fetch(
        "select error ->> 'code' as code from messages where id = any($1::uuid[])",
        [j.message["id"] for j in jobs],
    )
    assert [r["code"] for r in failed] == ["campaign_paused"] * 2
    async with db.transaction():
        await steer(conn=db, organization_id=world["org"], campaign_id=campaign.id, action="resume")
    sent: list[dict[str, Any]] = []
    respx.post(GRAPH).mock(side_effect=provider(sent))
    await dispatch(runtime, batch=10)
    assert sorted(s["to"] for s in sent) == ["+4915100000000", "+4915100000001"]
    assert await statuses(db, campaign.id) == {"sent": 2}
