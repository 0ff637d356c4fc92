"""Choosing an agent for a conversation, and agents' availability and capacity.

Only available agents are chosen: members whose availability (set by themselves,
public.member_availability) is online; no row is offline. An agent at their
capacity (open conversations, i.e. not resolved) is passed over by both methods.

    round_robin  the next available agent after the last one chosen, in a fixed order
    balanced     the available agent with the fewest open conversations (ties: the
                 next after the last one chosen)

Both lock the organization's cursor row (private.assignment_cursors) for the rest
of the caller's transaction, so concurrent workers choose one after the other and
never both pick the same "next" agent or overfill one.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from shared.db import Connection, fetch_found

Method = Literal["round_robin", "balanced"]
Availability = Literal["online", "away", "offline"]

_CANDIDATES = """
select a.user_id, l.load
  from public.member_availability a
  cross join lateral (
    select count(*) as load from public.conversations c
     where c.organization_id = a.organization_id and c.assignee_id = a.user_id
       and c.status <> 'resolved') l
 where a.organization_id = $1 and a.availability = 'online' and a.user_id <> all($2::uuid[])
   and (a.capacity is null or a.capacity > l.load)
 order by a.user_id
"""


async def choose(
    *, conn: Connection, organization_id: UUID, method: Method, exclude: list[UUID] | None = None
) -> UUID | None:
    """The agent to assign next (None if nobody is available), recorded as the last chosen.
    Call inside the transaction that assigns: the lock holds until it ends."""
    await conn.execute(
        "insert into private.assignment_cursors (organization_id) values ($1)"
        " on conflict (organization_id) do nothing",
        organization_id,
    )
    last: UUID | None = await conn.fetchval(
        "select last_user_id from private.assignment_cursors where organization_id = $1 for update",
        organization_id,
    )
    rows = await conn.fetch(_CANDIDATES, organization_id, exclude or [])
    if not rows:
        return None
    # the fixed order, rotated to start after the last one chosen
    after = [r for r in rows if last is not None and r["user_id"] > last]
    ring = after + [r for r in rows if r not in after]
    if method == "balanced":
        fewest = min(r["load"] for r in ring)
        ring = [r for r in ring if r["load"] == fewest]
    chosen: UUID = ring[0]["user_id"]
    await conn.execute(
        "update private.assignment_cursors set last_user_id = $2, updated_at = now()"
        " where organization_id = $1",
        organization_id,
        chosen,
    )
    return chosen


async def assign_conversation(
    *, conn: Connection, organization_id: UUID, conversation_id: UUID, user_id: UUID | None
) -> bool:
    """Sets the assignee; False if there is no such conversation in the organization."""
    done = await conn.fetchval(
        "update public.conversations set assignee_id = $3"
        " where organization_id = $1 and id = $2 returning true",
        organization_id,
        conversation_id,
        user_id,
    )
    return bool(done)


# ---- availability, capacity and the organization's setting (caller's RLS) -----------------


async def set_availability(
    *, conn: Connection, organization_id: UUID, availability: Availability
) -> dict[str, object]:
    """The caller's own availability in the organization."""
    return await fetch_found(
        conn,
        "No such organization",
        """
        insert into public.member_availability (organization_id, user_id, availability)
        select $1, auth.uid(), $2
         where exists (select 1 from public.organization_members m
                        where m.organization_id = $1 and m.user_id = auth.uid())
        on conflict (organization_id, user_id) do update set availability = excluded.availability
        returning organization_id, user_id, availability, capacity, updated_at
        """,
        organization_id,
        availability,
    )


async def set_capacity(
    *, conn: Connection, organization_id: UUID, user_id: UUID, capacity: int | None
) -> dict[str, object]:
    """An agent's capacity (managers and above: the table's trigger refuses others)."""
    return await fetch_found(
        conn,
        "No such member",
        """
        insert into public.member_availability (organization_id, user_id, capacity)
        select $1, $2, $3
         where exists (select 1 from public.organization_members m
                        where m.organization_id = $1 and m.user_id = $2)
        on conflict (organization_id, user_id) do update set capacity = excluded.capacity
        returning organization_id, user_id, availability, capacity, updated_at
        """,
        organization_id,
        user_id,
        capacity,
    )


async def set_reassignment(
    *, conn: Connection, organization_id: UUID, reassign: Literal["off", "round_robin", "balanced"]
) -> dict[str, object]:
    """Whether (and how) a member's open conversations are reassigned when they go offline
    or leave (admins: the organizations policy refuses others)."""
    return await fetch_found(
        conn,
        "No such organization",
        "update public.organizations set reassign_unavailable = $2 where id = $1"
        " returning id as organization_id, reassign_unavailable",
        organization_id,
        reassign,
    )
