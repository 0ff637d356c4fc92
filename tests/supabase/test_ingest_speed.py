"""The inbound path's cheaper triggers keep their meaning: a contact's activity from
messages to the minute, events and broadcasts only for changes that carry them, and
no row moving to another organization (supabase/migrations/*_ingest_speed.sql)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import pytest

from shared.db import Connection
from tests.support import (
    make_channel_account,
    make_contact,
    make_conversation,
    make_org,
    make_user,
    module_runtime_fixtures,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
runtime, db = module_runtime_fixtures()
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


async def message_at(db: Connection, conversation: UUID, at: datetime) -> None:
    await db.execute(
        "insert into public.messages (organization_id, conversation_id, channel_account_id,"
        " direction, sender_type, body, status, created_at)"
        " select organization_id, id, channel_account_id, 'inbound', 'contact', 'hi',"
        " 'received', $2 from public.conversations where id = $1",
        conversation,
        at,
    )


async def test_a_contacts_activity_from_messages_is_kept_to_the_minute(db: Connection):
    org = await make_org(db, await make_user(db))
    contact = await make_contact(db, org)
    conversation = await make_conversation(db, org, contact=contact)

    async def activity() -> tuple[datetime, str]:
        row = await db.fetchrow(
            "select last_activity_at, xmin::text from contacts where id = $1", contact
        )
        return row["last_activity_at"], row["xmin"]

    await message_at(db, conversation, T0)
    first, version = await activity()
    assert first == T0
    # A burst within the minute leaves the row alone (not even rewritten)...
    for seconds in (30, 60):
        await message_at(db, conversation, T0 + timedelta(seconds=seconds))
        assert await activity() == (T0, version)
    # ...the first message more than a minute later moves it, and nothing moves it back.
    await message_at(db, conversation, T0 + timedelta(seconds=61))
    assert (await activity())[0] == T0 + timedelta(seconds=61)
    await message_at(db, conversation, T0 - timedelta(hours=1))
    assert (await activity())[0] == T0 + timedelta(seconds=61)
    # Notes, tasks and deals still set it exactly.
    await db.execute(
        "select app.touch_contact_activity($1, $2, $3)",
        org,
        contact,
        T0 + timedelta(seconds=62),
    )
    assert (await activity())[0] == T0 + timedelta(seconds=62)


async def test_conversation_events_and_broadcasts_only_for_what_carries_them(db: Connection):
    org = await make_org(db, await make_user(db))
    conversation = await make_conversation(db, org)

    async def written() -> tuple[list[str], int]:
        events = await db.fetch(
            "select event_type from outbox_events where aggregate_id = $1 order by id",
            conversation,
        )
        broadcasts = await db.fetchval(
            "select count(*) from realtime.messages"
            " where payload ->> 'table' = 'conversations' and payload -> 'record' ->> 'id' = $1",
            str(conversation),
        )
        return [e["event_type"] for e in events], broadcasts

    assert await written() == (["conversation.created"], 1)
    await db.execute("update conversations set unread_count = 3 where id = $1", conversation)
    assert await written() == (["conversation.created"], 2)  # broadcast, no event
    await db.execute("update conversations set status = 'resolved' where id = $1", conversation)
    assert await written() == (["conversation.created", "conversation.status_changed"], 3)
    async with db.transaction():  # what app.ingest_message does while it writes
        await db.execute("select set_config('connectgain.broadcast', 'off', true)")
        await db.execute("update conversations set status = 'open' where id = $1", conversation)
    assert await written() == (
        ["conversation.created", "conversation.status_changed", "conversation.status_changed"],
        3,
    )


@pytest.mark.parametrize("table", ["conversations", "contacts"])
async def test_a_row_never_moves_to_another_organization(db: Connection, table: str):
    owner = await make_user(db)
    org, other = await make_org(db, owner), await make_org(db, owner)
    conversation = await make_conversation(db, org, account=await make_channel_account(db, org))
    row = await db.fetchval(
        f"select {'id' if table == 'conversations' else 'contact_id'} from conversations"
        " where id = $1",
        conversation,
    )
    with pytest.raises(asyncpg.PostgresError, match="cannot move to another organization"):
        await db.execute(f"update {table} set organization_id = $2 where id = $1", row, other)
    await db.execute(f"update {table} set updated_at = now() where id = $1", row)
    assert await db.fetchval(f"select organization_id from {table} where id = $1", row) == org
