"""A conversation's SLA clocks: started and stopped by domain events, measured in
wall-clock and business-hours seconds, breached once.

    message.received from the contact   starts the first-response clock (once per
                                         conversation) or else a next-response clock,
                                         unless one is running; and the resolution
                                         clock, unless it runs
    message.sent by a user (an agent)   stops the running response clock (bots and
                                         system messages do not answer)
    status → resolved                   stops the resolution clock; a response clock
                                         still running is cancelled (kept if breached)
    resolved → another status           a reopening: a new resolution clock from then;
                                         the first response stays answered, so the
                                         contact's next message starts a next-response
                                         clock

A conversation gets its policy when its first clock would start (its channel
account's default, else the organization's) and keeps it: a later default applies
to new conversations only. `apply_sla_policy` changes it (automation), and sets the
running clocks' due times by the new targets from when they started.

A clock stopped past its due time is breached; so is one still running when the
sweep finds it past due. Either way `sla.breached` is emitted once, in the
transaction that first marks the clock breached (`breached_at`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from shared.db import Connection
from shared.errors import NotFound
from shared.sla.hours import Schedule, business_seconds, deadline
from shared.sla.inputs import schedule_of

RESPONSES = ("first_response", "next_response")
KINDS = (*RESPONSES, "resolution")
CLOCK_COLUMNS = (
    "id, kind, policy_id, business_hours_only, started_at, due_at, stopped_at, outcome,"
    " breached_at, wall_seconds, business_seconds"
)


@dataclass(frozen=True)
class Policy:
    id: UUID
    targets: dict[str, int | None]
    business_hours_only: bool


def _policy(row: Any) -> Policy:
    return Policy(
        id=row["id"],
        targets={kind: row[f"{kind}_seconds"] for kind in KINDS},
        business_hours_only=row["business_hours_only"],
    )


POLICY_COLUMNS = (
    "id, first_response_seconds, next_response_seconds, resolution_seconds, business_hours_only"
)


async def default_policy(
    conn: Connection, organization_id: UUID, channel_account_id: UUID
) -> Policy | None:
    row = await conn.fetchrow(
        f"select {POLICY_COLUMNS} from public.sla_policies"
        " where organization_id = $1 and is_default"
        " and (channel_account_id = $2 or channel_account_id is null)"
        " order by channel_account_id nulls last limit 1",
        organization_id,
        channel_account_id,
    )
    return _policy(row) if row else None


async def policy_by_id(conn: Connection, organization_id: UUID, policy_id: UUID) -> Policy | None:
    row = await conn.fetchrow(
        f"select {POLICY_COLUMNS} from public.sla_policies where organization_id = $1 and id = $2",
        organization_id,
        policy_id,
    )
    return _policy(row) if row else None


async def schedule_for(
    conn: Connection, organization_id: UUID, channel_account_id: UUID
) -> Schedule | None:
    """The channel account's business hours, else the organization's, else none."""
    row = await conn.fetchrow(
        "select timezone, weekly, holidays from public.business_hours"
        " where organization_id = $1"
        " and (channel_account_id = $2 or channel_account_id is null)"
        " order by channel_account_id nulls last limit 1",
        organization_id,
        channel_account_id,
    )
    return schedule_of(dict(row)) if row else None


def due_at(
    policy: Policy, schedule: Schedule | None, kind: str, started: datetime
) -> datetime | None:
    target = policy.targets[kind]
    if target is None:
        return None
    if policy.business_hours_only and schedule is not None:
        return deadline(schedule, started, timedelta(seconds=target))
    return started + timedelta(seconds=target)


@dataclass
class Context:
    """What handling one conversation's event needs, loaded once."""

    conn: Connection
    organization_id: UUID
    conversation_id: UUID
    channel_account_id: UUID
    policy: Policy | None
    schedule: Schedule | None


async def start(ctx: Context, kind: str, at: datetime) -> None:
    """Starts a clock of `kind` unless one is running (the running-clock unique index)."""
    policy = ctx.policy
    if policy is None:
        return
    await ctx.conn.execute(
        "insert into public.sla_clocks (organization_id, conversation_id, policy_id, kind,"
        " business_hours_only, started_at, due_at) values ($1, $2, $3, $4, $5, $6, $7)"
        " on conflict (organization_id, conversation_id, kind) where stopped_at is null"
        " do nothing",
        ctx.organization_id,
        ctx.conversation_id,
        policy.id,
        kind,
        policy.business_hours_only,
        at,
        due_at(policy, ctx.schedule, kind, at),
    )


async def stop(ctx: Context, kinds: tuple[str, ...], at: datetime, *, cancel: bool = False) -> int:
    """Stops the running clocks of `kinds` at `at`, measured; emits a breach for each
    one late that the sweep has not marked yet. Cancelled clocks are not measured
    against their target. The number stopped."""
    conn = ctx.conn
    rows = await conn.fetch(
        f"select {CLOCK_COLUMNS} from public.sla_clocks"
        " where organization_id = $1 and conversation_id = $2 and kind = any($3::text[])"
        " and stopped_at is null for update",
        ctx.organization_id,
        ctx.conversation_id,
        list(kinds),
    )
    for row in rows:
        started = row["started_at"]
        stopped = max(at, started)
        late = row["due_at"] is not None and stopped > row["due_at"]
        breached = late or row["breached_at"] is not None
        outcome = "breached" if breached else "cancelled" if cancel else "met"
        wall = int((stopped - started).total_seconds())
        business = business_seconds(ctx.schedule, started, stopped) if ctx.schedule else wall
        await conn.execute(
            "update public.sla_clocks set stopped_at = $2, outcome = $3, wall_seconds = $4,"
            " business_seconds = $5, breached_at = coalesce(breached_at, $6) where id = $1",
            row["id"],
            stopped,
            outcome,
            wall,
            business,
            row["due_at"] if late else None,
        )
        if late and row["breached_at"] is None:  # the row is locked: nobody marked it since
            await emit_breach(conn, ctx.organization_id, ctx.conversation_id, dict(row))
    return len(rows)


def breach_body(conversation_id: UUID, clock: dict[str, Any]) -> dict[str, Any]:
    return {
        "conversation_id": str(conversation_id),
        "clock_id": clock["id"],
        "kind": clock["kind"],
        "policy_id": str(clock["policy_id"]) if clock["policy_id"] else None,
        "business_hours_only": clock["business_hours_only"],
        "started_at": clock["started_at"].isoformat(),
        "due_at": clock["due_at"].isoformat(),
    }


async def emit_breach(
    conn: Connection, organization_id: UUID, conversation_id: UUID, clock: dict[str, Any]
) -> None:
    await conn.execute(
        "select app.emit($1, 'sla.breached', $2, $3)",
        organization_id,
        conversation_id,
        breach_body(conversation_id, clock),
    )


async def apply_sla_policy(
    *, conn: Connection, organization_id: UUID, conversation_id: UUID, policy_id: UUID
) -> dict[str, Any]:
    """Puts a conversation under a policy (automation's action): the running clocks'
    due times follow its targets from when each started; new clocks use it. Runs in
    the caller's transaction, which must be the owner's (the events worker's, as
    automation runs in it): only the worker writes SLA state, so RLS refuses users."""
    policy = await policy_by_id(conn, organization_id, policy_id)
    if policy is None:
        raise NotFound("No such SLA policy")
    account = await conn.fetchval(
        "select channel_account_id from public.conversations where organization_id = $1"
        " and id = $2",
        organization_id,
        conversation_id,
    )
    if account is None:
        raise NotFound("No such conversation")
    await conn.execute(
        "insert into public.conversation_sla (organization_id, conversation_id, policy_id)"
        " values ($1, $2, $3) on conflict (organization_id, conversation_id)"
        " do update set policy_id = excluded.policy_id, updated_at = now()",
        organization_id,
        conversation_id,
        policy_id,
    )
    schedule = await schedule_for(conn, organization_id, account)
    running = await conn.fetch(
        "select id, kind, started_at from public.sla_clocks where organization_id = $1"
        " and conversation_id = $2 and stopped_at is null for update",
        organization_id,
        conversation_id,
    )
    if running:
        await conn.execute(
            "update public.sla_clocks c set policy_id = $2, business_hours_only = $3,"
            " due_at = u.due from unnest($1::bigint[], $4::timestamptz[]) u(id, due)"
            " where c.id = u.id",
            [r["id"] for r in running],
            policy_id,
            policy.business_hours_only,
            [due_at(policy, schedule, r["kind"], r["started_at"]) for r in running],
        )
    return await sla_state(
        conn=conn, organization_id=organization_id, conversation_id=conversation_id
    )


def _clock(row: Any) -> dict[str, Any]:
    clock = dict(row)
    clock["breached"] = row["breached_at"] is not None
    clock["met"] = row["outcome"] == "met"
    return clock


async def sla_state(
    *, conn: Connection, organization_id: UUID, conversation_id: UUID
) -> dict[str, Any]:
    """A conversation's policy, its running clocks by kind and every clock, newest first."""
    row = await conn.fetchrow(
        "select c.id, s.policy_id from public.conversations c"
        " left join public.conversation_sla s"
        "   on s.organization_id = c.organization_id and s.conversation_id = c.id"
        " where c.organization_id = $1 and c.id = $2",
        organization_id,
        conversation_id,
    )
    if row is None:
        raise NotFound("No such conversation")
    clocks = [
        _clock(r)
        for r in await conn.fetch(
            f"select {CLOCK_COLUMNS} from public.sla_clocks"
            " where organization_id = $1 and conversation_id = $2 order by id desc limit 200",
            organization_id,
            conversation_id,
        )
    ]
    running = {c["kind"]: c for c in clocks if c["stopped_at"] is None}
    return {
        "conversation_id": conversation_id,
        "policy_id": row["policy_id"],
        "running": {kind: running.get(kind) for kind in KINDS},
        "clocks": clocks,
    }
