"""A session's row: begun, loaded with its engine, saved with its steps' log.

Every entry point takes the conversation's transaction-level advisory lock (`lock`)
first, so two quick replies never run a flow twice: the second waits for the
first's commit and then sees its session. A session runs its flow's version, and a
version's graph is parsed once per process (versions are never changed). What a
conversation held when its session began is marked handled then: a greeting's own
trigger is never taken for an answer (shared.bots.inbound feeds the rest in order).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any
from uuid import UUID

from shared.bots.engine import Engine, State, Step
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


async def live_session(conn: Connection, org: UUID, conversation_id: UUID) -> Any:
    """The conversation's active or waiting session, if it has one."""
    return await conn.fetchrow(
        f"select {SESSION_COLUMNS} from public.bot_sessions"
        " where organization_id = $1 and conversation_id = $2 and status in ('active', 'waiting')",
        org,
        conversation_id,
    )


async def save(conn: Connection, session: Any, state: State, steps: list[Step]) -> Any:
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


def state_of(session: Any) -> State:
    return State(
        node=session["current_node"],
        variables=dict(session["variables"]),
        status=session["status"],
        retries=session["retries"],
        resume_at=session["resume_at"],
        end_reason=session["end_reason"],
    )


async def engine_of(
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
        await save(conn, session, state, [])
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
    engine = await engine_of(runtime, conn, session, conversation, jobs, account)
    if engine is None:
        return session
    state = state_of(session)
    steps = await engine.begin(state)
    return await save(conn, session, state, steps)


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
