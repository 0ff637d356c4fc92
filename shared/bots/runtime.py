"""Live sessions: inbound messages in order, one at a time per conversation.

Every entry point (an inbound message, a new conversation, the automation action,
the API, the sweep) takes the conversation's transaction-level advisory lock
first, so two quick replies never run a flow twice: the second waits for the
first's commit and then sees its session. A message is handled once, whoever
sees it first (the pass right after the webhook, or the events worker):
`private.bot_handled_messages` is written in the transaction that acts on it,
and with it every earlier unhandled message of the conversation, in order.

What a conversation held when its session began is marked handled then: a
greeting's own trigger is never taken for an answer. Messages are taken in the
provider's order (their timestamps; within one second, in no defined order).
Bot messages are stored in the transaction and sent after the commit, in order,
through the inbox's send path.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared.bots import triggers
from shared.bots.engine import Engine, Inbound, State, Step
from shared.bots.gate import forget
from shared.bots.graph import Graph
from shared.bots.host import CONVERSATION, LiveHost, builtins
from shared.bots.sending import send_all
from shared.bots.validate import check
from shared.channels.base import Account
from shared.db import Connection
from shared.errors import AppError, Conflict, NotFound
from shared.inbox.outbound import Outbound
from shared.runtime import Runtime

log = logging.getLogger("connectgain.bots")
LIVE = ("active", "waiting")
# How far back a message may wait unhandled behind the one being handled.
BACKLOG = "10 minutes"

SESSION_COLUMNS = (
    "id, organization_id, flow_id, flow_version_id, conversation_id, contact_id, status,"
    " current_node, variables, retries, resume_at, timeout_seconds, last_activity_at,"
    " expires_at, started_by, started_at, ended_at, end_reason"
)

_GRAPHS: OrderedDict[UUID, Graph] = OrderedDict()  # versions are immutable: parse each once


async def graph_of(conn: Connection, version_id: UUID) -> Graph:
    if version_id in _GRAPHS:
        _GRAPHS.move_to_end(version_id)
        return _GRAPHS[version_id]
    raw = await conn.fetchval(
        "select graph from public.bot_flow_versions where id = $1", version_id
    )
    graph = check(raw)
    _GRAPHS[version_id] = graph
    if len(_GRAPHS) > 512:
        _GRAPHS.popitem(last=False)
    return graph


async def lock(conn: Connection, conversation_id: UUID) -> None:
    await conn.execute(
        "select pg_advisory_xact_lock(hashtextextended('bot:' || $1::uuid::text, 0))",
        conversation_id,
    )


@dataclass
class Pass:
    """One transaction's work on a conversation: what to send once it commits."""

    jobs: list[Outbound]
    sessions: list[UUID]


async def _live(conn: Connection, org: UUID, conversation_id: UUID) -> Any:
    return await conn.fetchrow(
        f"select {SESSION_COLUMNS} from public.bot_sessions"
        " where organization_id = $1 and conversation_id = $2 and status in ('active', 'waiting')",
        org,
        conversation_id,
    )


async def _save(conn: Connection, session: Any, state: State, steps: list[Step]) -> Any:
    """The session's new state and its steps' log, in one statement; the session as saved."""
    return await conn.fetchrow(
        f"""
        with logged as (
          insert into public.bot_session_steps (organization_id, session_id, node_id, kind, input,
                 output, variables_changed, error, started_at, duration_ms)
          select $1, $2, * from unnest($9::text[], $10::text[], $11::jsonb[], $12::jsonb[],
                                       $13::jsonb[], $14::text[], $15::timestamptz[], $16::int[])
        )
        update public.bot_sessions
           set status = $3, current_node = $4, variables = $5, retries = $6, resume_at = $7,
               last_activity_at = now(),
               expires_at = case when $3 in ('active', 'waiting')
                                 then now() + make_interval(secs => timeout_seconds) end,
               ended_at = case when $3 in ('active', 'waiting') then null else now() end,
               end_reason = $8
         where organization_id = $1 and id = $2
        returning {SESSION_COLUMNS}
        """,
        session["organization_id"],
        session["id"],
        state.status,
        state.node,
        state.variables,
        state.retries,
        state.resume_at,
        state.end_reason,
        [s.node_id for s in steps],
        [s.kind for s in steps],
        [s.input for s in steps],
        [s.output for s in steps],
        [s.variables_changed for s in steps],
        [s.error[:2000] if s.error else None for s in steps],
        [s.started_at for s in steps],
        [s.duration_ms for s in steps],
    )


def _state(session: Any) -> State:
    return State(
        node=session["current_node"],
        variables=dict(session["variables"]),
        status=session["status"],
        retries=session["retries"],
        resume_at=session["resume_at"],
        end_reason=session["end_reason"],
    )


async def _engine(
    runtime: Runtime,
    conn: Connection,
    session: Any,
    conversation: Any,
    jobs: list[Outbound],
    account: Account | None = None,
) -> Engine | None:
    """The session's engine; None, with the session failed, when its version's graph does
    not check (a row written past the functions)."""
    try:
        graph = await graph_of(conn, session["flow_version_id"])
    except AppError as exc:
        reason = f"the flow's version is invalid: {exc.message}"[:1000]
        state = State(
            node=session["current_node"],
            variables=dict(session["variables"]),
            status="failed",
            end_reason=reason,
        )
        await _save(conn, session, state, [])
        return None
    host = LiveHost(runtime, conn, graph, session["id"], conversation, jobs, account)
    return Engine(graph, host)


async def begin(
    runtime: Runtime,
    conn: Connection,
    *,
    conversation: Any,
    flow: Any,
    started_by: dict[str, Any],
    jobs: list[Outbound],
    account: Account | None = None,
) -> Any:
    """A session of the flow's published version, run until it waits or ends; None when
    the conversation already has a live one."""
    session = await conn.fetchrow(
        f"""
        insert into public.bot_sessions (organization_id, flow_id, flow_version_id,
               conversation_id, contact_id, timeout_seconds, variables, started_by,
               started_at, last_activity_at)
        values ($1, $2, $3, $4, $5, $6, $7, $8, clock_timestamp(), clock_timestamp())
        on conflict (conversation_id) where status in ('active', 'waiting') do nothing
        returning {SESSION_COLUMNS}
        """,
        conversation["organization_id"],
        flow["id"],
        flow["published_version_id"],
        conversation["id"],
        conversation["contact_id"],
        flow["timeout_seconds"],
        builtins(conversation),
        started_by,
    )
    if session is None:
        return None
    forget(conversation["organization_id"])  # the organization has a live session now
    # What the customer wrote before the session began is not an answer to it.
    await conn.execute(
        f"""
        insert into private.bot_handled_messages (message_id)
        select m.id from public.messages m
         where m.organization_id = $1 and m.conversation_id = $2 and m.direction = 'inbound'
           and m.created_at >= now() - interval '{BACKLOG}'
        on conflict do nothing
        """,
        conversation["organization_id"],
        conversation["id"],
    )
    engine = await _engine(runtime, conn, session, conversation, jobs, account)
    if engine is None:
        return session
    state = _state(session)
    steps = await engine.begin(state)
    return await _save(conn, session, state, steps)


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
    session = await _live(conn, org, conversation["id"])
    if session is not None:
        engine = await _engine(runtime, conn, session, conversation, jobs, account)
        if engine is None:
            return
        state = _state(session)
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
            await _save(conn, session, state, steps)
        return
    first = not await conn.fetchval(
        "select exists (select 1 from public.messages where organization_id = $1"
        " and conversation_id = $2 and direction = 'inbound' and (created_at, id) < ($3, $4))"
        " or exists (select 1 from public.bot_sessions where organization_id = $1"
        " and conversation_id = $2)",
        org,
        conversation["id"],
        message["created_at"],
        message["id"],
    )
    match = await triggers.matching(
        conn,
        organization_id=org,
        text=message["body"],
        account_id=conversation["channel_account_id"],
        new_conversation=first,
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


async def start(
    runtime: Runtime,
    *,
    organization_id: UUID,
    flow_id: UUID,
    conversation_id: UUID,
    started_by: dict[str, Any],
) -> Any:
    """The API's and the automation action's start: the session, or a 409 when the
    conversation already has a live one."""
    jobs: list[Outbound] = []
    async with runtime.db.service_tx() as conn:
        await lock(conn, conversation_id)
        conversation = await conn.fetchrow(CONVERSATION, organization_id, conversation_id)
        if conversation is None:
            raise NotFound("No such conversation")
        flow = await conn.fetchrow(
            "select id, published_version_id, timeout_seconds from public.bot_flows"
            " where organization_id = $1 and id = $2",
            organization_id,
            flow_id,
        )
        if flow is None:
            raise NotFound("No such bot flow")
        if flow["published_version_id"] is None:
            raise Conflict("The bot flow has no published version", code="not_published")
        session = await begin(
            runtime, conn, conversation=conversation, flow=flow, started_by=started_by, jobs=jobs
        )
        if session is None:
            raise Conflict("The conversation already has a live bot session", code="session_live")
    await send_all(runtime, jobs)
    return session


async def sweep(
    runtime: Runtime, *, now: datetime | None = None, limit: int = 200
) -> dict[str, int]:
    """Delays that ran out go on; sessions idle past their timeout end timed_out."""
    at = now or datetime.now(UTC)
    counts = {"resumed": 0, "timed_out": 0, "forgotten": 0}
    async with runtime.db.service_tx() as conn:
        counts["timed_out"] = len(
            await conn.fetch(
                """
                with idle as (
                  select id from public.bot_sessions
                   where status in ('active', 'waiting') and expires_at <= $1
                   order by expires_at limit $2 for update skip locked
                )
                update public.bot_sessions s
                   set status = 'timed_out', ended_at = $1, expires_at = null, resume_at = null,
                       end_reason = 'no activity within the timeout'
                  from idle where s.id = idle.id
                returning s.id
                """,
                at,
                limit,
            )
        )
        forgotten = await conn.execute(
            "delete from private.bot_handled_messages where handled_at < $1::timestamptz -"
            " interval '1 day'",
            at,
        )
        counts["forgotten"] = int(forgotten.split()[-1])
        due = await conn.fetch(
            "select id, organization_id, conversation_id from public.bot_sessions"
            " where status = 'waiting' and resume_at <= $1 order by resume_at limit $2",
            at,
            limit,
        )
    for row in due:
        counts["resumed"] += await _resume(runtime, row, at)
    return counts


async def _resume(runtime: Runtime, row: Any, at: datetime) -> int:
    jobs: list[Outbound] = []
    async with runtime.db.service_tx() as conn:
        await lock(conn, row["conversation_id"])
        session = await _live(conn, row["organization_id"], row["conversation_id"])
        if session is None or session["id"] != row["id"]:
            return 0
        conversation = await conn.fetchrow(
            CONVERSATION, row["organization_id"], row["conversation_id"]
        )
        engine = await _engine(runtime, conn, session, conversation, jobs)
        if engine is None:
            return 0
        state = _state(session)
        steps = await engine.resume(state, at)
        if not steps:
            return 0
        await _save(conn, session, state, steps)
    await send_all(runtime, jobs)
    return 1
