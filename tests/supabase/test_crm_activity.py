"""Domain events in the outbox and the contact's last activity, written by triggers."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import pytest

from shared.db import Connection
from tests.support import make_contact, make_conversation, make_message, make_org, make_user
from tests.support_crm import define_field, make_company, make_deal, make_note, make_task


@pytest.fixture
async def org(db: Connection) -> UUID:
    return await make_org(db, await make_user(db))


async def events(db: Connection, aggregate: UUID) -> list[asyncpg.Record]:
    return await db.fetch(
        "select event_type, payload from outbox_events where aggregate_id = $1 order by id",
        aggregate,
    )


async def test_contact_updated_carries_the_previous_values_of_what_changed(
    db: Connection, org: UUID
):
    await define_field(db, org, "contact", "plan", "text")
    contact = await make_contact(db, org, name="Ana", email="ana@example.com")
    company = await make_company(db, org)
    await db.execute(
        "update contacts set name = 'Ana Lima', company_id = $2,"
        ' custom_fields = \'{"plan": "pro"}\' where id = $1',
        contact,
        company,
    )
    await db.execute("update contacts set name = name where id = $1", contact)  # no change
    kinds = await events(db, contact)
    assert [e["event_type"] for e in kinds] == ["contact.created", "contact.updated"]
    payload = kinds[1]["payload"]
    assert payload["previous"] == {"name": "Ana", "company_id": None, "custom_fields": {}}
    assert payload["contact"]["name"] == "Ana Lima"


async def test_activity_moves_last_activity_at_without_touching_updated_at(
    db: Connection, org: UUID
):
    contact = await make_contact(db, org)
    before = await db.fetchrow(
        "select updated_at, last_activity_at from contacts where id = $1", contact
    )
    assert before["last_activity_at"] is None
    conversation = await make_conversation(db, org, contact=contact)
    await make_message(db, org, conversation)
    after = await db.fetchrow(
        "select updated_at, last_activity_at from contacts where id = $1", contact
    )
    assert after["last_activity_at"] is not None
    assert after["updated_at"] == before["updated_at"]
    assert [e["event_type"] for e in await events(db, contact)] == ["contact.created"]


@pytest.mark.parametrize("source", ["note", "conversation_note", "deal", "completed_task"])
async def test_notes_deals_and_completed_tasks_are_activity(db: Connection, org: UUID, source: str):
    contact = await make_contact(db, org)
    if source == "note":
        await make_note(db, org, contact_id=contact)
    elif source == "conversation_note":
        conversation = await make_conversation(db, org, contact=contact)
        await db.execute("update contacts set last_activity_at = null where id = $1", contact)
        await make_note(db, org, conversation_id=conversation)
    elif source == "deal":
        await make_deal(db, org, contact_id=contact)
    else:
        task = await make_task(db, org, contact_id=contact)
        assert await db.fetchval(
            "select last_activity_at is null from contacts where id = $1", contact
        )
        await db.execute("update tasks set status = 'done' where id = $1", task)
    assert await db.fetchval(
        "select last_activity_at is not null from contacts where id = $1", contact
    )


async def test_completing_a_task_stamps_it_and_tells_the_outbox(db: Connection, org: UUID):
    task = await make_task(db, org)
    await db.execute("update tasks set status = 'done' where id = $1", task)
    done_at = await db.fetchval("select completed_at from tasks where id = $1", task)
    assert done_at is not None
    await db.execute("update tasks set title = 'Renamed' where id = $1", task)
    assert await db.fetchval("select completed_at from tasks where id = $1", task) == done_at
    await db.execute("update tasks set status = 'open' where id = $1", task)
    assert await db.fetchval("select completed_at from tasks where id = $1", task) is None
    assert [e["event_type"] for e in await events(db, task)] == ["task.created", "task.completed"]
