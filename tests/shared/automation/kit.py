"""Rules written straight into the database (the function's checks are tested apart),
the worker run to completion, and what the automation consumer logged."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shared.db import Connection
from shared.events import worker
from shared.runtime import Runtime
from tests.support import make_org, make_user, member


async def team(db: Connection, **roles: str) -> dict[str, UUID]:
    """An organization with its owner and one member per keyword (name=role), made in order."""
    owner = await make_user(db)
    org_id = await make_org(db, owner)
    people = {"org": org_id, "owner": owner}
    for name, role in roles.items():
        people[name] = await member(db, org_id, role)
    return people


async def make_rule(
    db: Connection,
    org: UUID,
    trigger: str,
    actions: list[dict[str, Any]],
    *,
    conditions: dict[str, Any] | None = None,
    position: int = 0,
    author: UUID | None = None,
    name: str = "rule",
) -> UUID:
    rule: UUID = await db.fetchval(
        "insert into public.automation_rules"
        " (organization_id, name, position, trigger, conditions, actions, created_by)"
        " values ($1, $2, $3, $4, $5, $6, $7) returning id",
        org,
        name,
        position,
        trigger,
        conditions or {},
        actions,
        author,
    )
    return rule


async def drain(runtime: Runtime, rounds: int = 8) -> None:
    """Runs the worker until it has nothing left (events caused by rules included)."""
    for _ in range(rounds):
        summary = await worker.run(runtime)
        if summary.claimed == 0 and summary.dispatched == 0:
            return
    raise AssertionError("the worker still had work after several runs")


async def runs_of(db: Connection, rule: UUID) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "select status, matched, actions, reason, depth, event_type from public.automation_runs"
        " where rule_id = $1 order by id",
        rule,
    )
    return [dict(r) for r in rows]


async def online(db: Connection, org: UUID, user: UUID, capacity: int | None = None) -> None:
    await db.execute(
        "insert into public.member_availability (organization_id, user_id, availability, capacity)"
        " values ($1, $2, 'online', $3) on conflict (organization_id, user_id)"
        " do update set availability = 'online', capacity = excluded.capacity",
        org,
        user,
        capacity,
    )
