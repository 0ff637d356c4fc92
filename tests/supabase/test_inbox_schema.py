"""The inbox schema's own guarantees: realtime authorization, monotonic statuses,
one open thread, same-organization references and the outbox written by triggers."""

from __future__ import annotations

import json
from uuid import UUID

import asyncpg
import pytest

from shared.db import Connection
from shared.runtime import Runtime
from tests.support import (
    make_channel_account,
    make_contact,
    make_conversation,
    make_message,
    make_org,
    make_user,
    member,
    principal,
)


async def realtime_join(db: Connection, user: UUID, topic: str) -> int:
    """What Realtime does to authorize a private channel join: role, claims, topic, select."""
    async with db.transaction():
        await db.execute(
            "select set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', $1, true),"
            " set_config('realtime.topic', $2, true)",
            json.dumps({"sub": str(user), "role": "authenticated"}),
            topic,
        )
        count: int = await db.fetchval(
            "select count(*) from realtime.messages where topic = realtime.topic()"
        )
        await db.execute("reset role")
    return count


async def test_inbox_changes_are_broadcast_to_the_organizations_private_topic(db: Connection):
    owner_a, owner_b = await make_user(db), await make_user(db)
    org_a, org_b = await make_org(db, owner_a), await make_org(db, owner_b)
    agent_a = await member(db, org_a, "agent")
    message = await make_message(db, org_a)

    topic_a = f"org:{org_a}:inbox"
    rows = await db.fetch(
        "select event, payload, private from realtime.messages where topic = $1", topic_a
    )
    events = {(r["event"], r["payload"]["table"]) for r in rows}
    assert ("INSERT", "messages") in events and ("INSERT", "conversations") in events
    assert all(r["private"] for r in rows)
    sent = next(r["payload"] for r in rows if r["payload"]["table"] == "messages")
    assert sent["record"]["id"] == str(message)
    # realtime.broadcast_changes' payload, whoever writes the row
    assert set(sent) == {"id", "old_record", "record", "operation", "table", "schema"}
    assert (sent["operation"], sent["schema"], sent["old_record"]) == ("INSERT", "public", None)
    await db.execute(
        "update conversations set status = 'resolved'"
        " where id = (select conversation_id from messages where id = $1)",
        message,
    )
    changed = await db.fetchval(
        "select payload from realtime.messages where event = 'UPDATE' and topic = $1", topic_a
    )
    assert (changed["old_record"]["status"], changed["record"]["status"]) == ("open", "resolved")
    rows = await db.fetch("select 1 from realtime.messages where topic = $1", topic_a)

    assert await realtime_join(db, agent_a, topic_a) == len(rows)
    assert await realtime_join(db, owner_b, topic_a) == 0
    assert await realtime_join(db, owner_b, f"org:{org_b}:inbox") == 0  # nothing happened in B


async def test_statuses_never_move_backwards(db: Connection):
    owner = await make_user(db)
    org = await make_org(db, owner)
    conversation = await make_conversation(db, org)
    message = await db.fetchval(
        "insert into messages (organization_id, conversation_id, channel_account_id, direction,"
        " sender_type, body, status, provider_message_id)"
        " select organization_id, id, channel_account_id, 'outbound', 'user', 'hi', 'queued', 'p1'"
        " from conversations where id = $1 returning id",
        conversation,
    )
    for status, column in [("read", "read_at"), ("delivered", "delivered_at"), ("sent", "sent_at")]:
        await db.execute(
            f"update messages set status = $2, {column} = now() where id = $1", message, status
        )
    row = await db.fetchrow(
        "select status::text, sent_at, delivered_at, read_at from messages where id = $1", message
    )
    assert row["status"] == "read"
    assert row["sent_at"] and row["delivered_at"] and row["read_at"]
    await db.execute(
        "update messages set status = 'failed', error = '{\"code\": 1}' where id = $1", message
    )
    assert await db.fetchval("select status::text from messages where id = $1", message) == "read"
    assert await db.fetchval("select error from messages where id = $1", message) is None


async def test_one_unresolved_conversation_per_contact_and_account(db: Connection):
    owner = await make_user(db)
    org = await make_org(db, owner)
    contact, account = await make_contact(db, org), await make_channel_account(db, org)
    first = await make_conversation(db, org, contact=contact, account=account)
    with pytest.raises(asyncpg.UniqueViolationError):
        await make_conversation(db, org, contact=contact, account=account)
    await db.execute("update conversations set status = 'resolved' where id = $1", first)
    assert await make_conversation(db, org, contact=contact, account=account) != first


async def test_references_into_another_organization_are_impossible(
    db: Connection, runtime: Runtime
):
    owner_a, owner_b = await make_user(db), await make_user(db)
    org_a, org_b = await make_org(db, owner_a), await make_org(db, owner_b)
    contact_a = await make_contact(db, org_a)
    account_b = await make_channel_account(db, org_b)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await make_conversation(db, org_b, contact=contact_a, account=account_b)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await make_contact(db, org_b, assignee_id=owner_a)  # not a member of B
    async with runtime.db.user_tx(principal(owner_b)) as conn:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(
                "insert into conversations (organization_id, contact_id, channel_account_id)"
                " values ($1, $2, $3)",
                org_b,
                contact_a,
                account_b,
            )


async def test_a_removed_member_is_unassigned_everywhere(db: Connection):
    owner = await make_user(db)
    org = await make_org(db, owner)
    agent = await member(db, org, "agent")
    contact = await make_contact(db, org, assignee_id=agent)
    await db.execute("delete from organization_members where user_id = $1", agent)
    assert await db.fetchval("select assignee_id from contacts where id = $1", contact) is None


async def test_domain_events_are_written_in_the_same_transaction(db: Connection):
    owner = await make_user(db)
    org = await make_org(db, owner)
    agent = await member(db, org, "agent")
    conversation = await make_conversation(db, org)
    await make_message(db, org, conversation)
    await db.execute(
        "update conversations set assignee_id = $2, status = 'pending' where id = $1",
        conversation,
        agent,
    )
    kinds = [
        r["event_type"]
        for r in await db.fetch(
            "select event_type from outbox_events where organization_id = $1 order by id", org
        )
    ]
    assert kinds == [
        "contact.created",
        "conversation.created",
        "message.received",
        "conversation.assigned",
        "conversation.status_changed",
    ]
    with pytest.raises(asyncpg.UniqueViolationError):
        async with db.transaction():
            await make_contact(db, org, phone="+15551234567")
            await make_contact(db, org, phone="+15551234567")
    assert (
        await db.fetchval("select count(*) from outbox_events where organization_id = $1", org) == 5
    )
