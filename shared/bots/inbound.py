"""Live sessions fed what arrives: inbound messages in order, one at a time per
conversation, and new conversations.

A message is handled once, whoever sees it first (the pass right after the webhook,
or the events worker): `private.bot_handled_messages` is written in the transaction
that acts on it, and with it every earlier unhandled message of the conversation, in
order, under the conversation's lock (shared.bots.sessions.lock). Messages are taken
in the provider's order (their timestamps; within one second, in no defined order).
A message answers its conversation's live session, or starts the flow its trigger
matches. Bot messages are stored in the transaction and sent after the commit, in
order, through the inbox's send path.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shared.bots import triggers
from shared.bots.engine import Inbound
from shared.bots.host import CONVERSATION
from shared.bots.sending import send_all
from shared.bots.sessions import (
    BACKLOG,
    begin,
    engine_of,
    live_session,
    lock,
    save,
    state_of,
)
from shared.channels.base import Account
from shared.db import Connection
from shared.inbox.outbound import Outbound
from shared.runtime import Runtime

# The message, if a bot may act on it (a triggered flow in the organization, or a live
# session in its conversation), with its conversation's lock taken in the same round trip.
_FIND = """
select m.id, m.conversation_id, m.created_at,
       pg_advisory_xact_lock(hashtextextended('bot:' || m.conversation_id::text, 0)) is null
  from public.messages m
 where m.organization_id = $1 and {where} and m.direction = 'inbound'
   and (exists (select 1 from public.bot_flows f
                 where f.organization_id = $1 and f.enabled
                   and f.published_version_id is not null and f.triggers <> '[]'::jsonb)
        or exists (select 1 from public.bot_sessions s
                    where s.organization_id = $1 and s.conversation_id = m.conversation_id
                      and s.status in ('active', 'waiting')))
"""
FIND_BY_ID = _FIND.format(where="m.id = $2")
FIND_BY_PROVIDER_ID = _FIND.format(where="m.channel_account_id = $2 and m.provider_message_id = $3")

# Read after the lock (a statement's snapshot is taken when it starts): the message and
# every earlier unhandled one of the conversation, marked handled, in order.
PENDING = f"""
with due as (
  select m.id, m.body, m.metadata, m.created_at from public.messages m
   where m.organization_id = $1 and m.conversation_id = $2 and m.direction = 'inbound'
     and m.created_at >= $3::timestamptz - interval '{BACKLOG}'
     and (m.created_at, m.id) <= ($3, $4)
     and not exists (select 1 from private.bot_handled_messages h where h.message_id = m.id)
), marked as (
  insert into private.bot_handled_messages (message_id) select id from due
  on conflict do nothing
)
select * from due order by created_at, id
"""


# With no live session: whether the message opens the conversation (for a new-conversation
# trigger), and whether a person holds it since a bot handed it off (no trigger then,
# until it is unassigned: the customer is talking to that person).
STARTS = """
select not (exists (select 1 from public.messages m
                     where m.organization_id = $1 and m.conversation_id = $2
                       and m.direction = 'inbound' and (m.created_at, m.id) < ($3, $4))
            or exists (select 1 from public.bot_sessions s
                        where s.organization_id = $1 and s.conversation_id = $2)) as first,
       c.assignee_id is not null
       and (select s.status from public.bot_sessions s
             where s.organization_id = $1 and s.conversation_id = $2
             order by s.started_at desc limit 1) = 'handed_off' as held
  from public.conversations c
 where c.organization_id = $1 and c.id = $2
"""


async def handle_message(runtime: Runtime, *, organization_id: UUID, message_id: UUID) -> bool:
    """An inbound message (and any earlier unhandled one of its conversation), in order;
    whether this call handled anything."""
    return await _handle(runtime, organization_id, None, FIND_BY_ID, message_id)


async def handle_inbound(runtime: Runtime, *, account: Account, provider_message_id: str) -> bool:
    """handle_message for a message the webhook just stored, known by its provider id; the
    account as the webhook read it sends the replies."""
    return await _handle(
        runtime, account.organization_id, account, FIND_BY_PROVIDER_ID, account.id,
        provider_message_id,
    )  # fmt: skip


async def _handle(
    runtime: Runtime, organization_id: UUID, account: Account | None, find: str, *key: Any
) -> bool:
    jobs: list[Outbound] = []
    async with runtime.db.service_tx() as conn:
        message = await conn.fetchrow(find, organization_id, *key)
        if message is None:
            return False
        conversation_id = message["conversation_id"]
        pending = await conn.fetch(
            PENDING, organization_id, conversation_id, message["created_at"], message["id"]
        )
        if not pending:
            return False
        conversation = await conn.fetchrow(CONVERSATION, organization_id, conversation_id)
        assert conversation is not None
        if account is not None and account.id != conversation["channel_account_id"]:
            account = None
        for row in pending:
            await _one(runtime, conn, conversation, row, jobs, account)
    await send_all(runtime, jobs)
    return True


async def _one(
    runtime: Runtime,
    conn: Connection,
    conversation: Any,
    message: Any,
    jobs: list[Outbound],
    account: Account | None,
) -> None:
    org = conversation["organization_id"]
    session = await live_session(conn, org, conversation["id"])
    if session is not None:
        engine = await engine_of(runtime, conn, session, conversation, jobs, account)
        if engine is None:
            return
        state = state_of(session)
        metadata: dict[str, Any] = message["metadata"] or {}
        found = metadata.get("reply")
        reply: dict[str, Any] = found if isinstance(found, dict) else {}
        inbound = Inbound(
            text=message["body"],
            reply_id=reply.get("id") or metadata.get("payload"),
            message_id=str(message["id"]),
        )
        steps = await engine.answer(state, inbound)
        if steps:
            await save(conn, session, state, steps)
        return
    started = await conn.fetchrow(
        STARTS, org, conversation["id"], message["created_at"], message["id"]
    )
    if started is None or started["held"]:  # gone meanwhile, or a person's
        return
    match = await triggers.matching(
        conn,
        organization_id=org,
        text=message["body"],
        account_id=conversation["channel_account_id"],
        new_conversation=started["first"],
    )
    if match is not None:
        flow, how = match
        await begin(
            runtime, conn, conversation=conversation, flow=flow, started_by=how, jobs=jobs,
            account=account,
        )  # fmt: skip


async def handle_new_conversation(
    runtime: Runtime, *, organization_id: UUID, conversation_id: UUID
) -> bool:
    """conversation.created: a flow whose trigger names the conversation's account, unless
    the conversation already had a session (its first message started one)."""
    jobs: list[Outbound] = []
    async with runtime.db.service_tx() as conn:
        await lock(conn, conversation_id)
        conversation = await conn.fetchrow(CONVERSATION, organization_id, conversation_id)
        if conversation is None or await conn.fetchval(
            "select exists (select 1 from public.bot_sessions where organization_id = $1"
            " and conversation_id = $2)",
            organization_id,
            conversation_id,
        ):
            return False
        match = await triggers.matching(
            conn,
            organization_id=organization_id,
            text=None,
            account_id=conversation["channel_account_id"],
            new_conversation=True,
        )
        if match is None:
            return False
        flow, how = match
        await begin(runtime, conn, conversation=conversation, flow=flow, started_by=how, jobs=jobs)
    await send_all(runtime, jobs)
    return True
