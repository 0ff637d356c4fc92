"""The events worker's "sla" consumer, and the sweep that finds breaches.

Each delivery is applied in a transaction of its own that also moves the
conversation's watermark (conversation_sla.last_event_id) past the event: a
delivery handled again (a worker died before recording it) or an older event
arriving after a newer one changes nothing. The watermark row is locked first,
so two workers never interleave one conversation's clocks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from shared.db import Connection
from shared.events.base import RELEASED, Claimed, Consumer, Event, Result, retry
from shared.runtime import Runtime
from shared.sla import clocks
from shared.sla.clocks import RESPONSES, Context

EVENT_TYPES = frozenset({"message.received", "message.sent", "conversation.status_changed"})


def _subject(event: Event) -> tuple[UUID, UUID, dict[str, Any]] | None:
    """(conversation, channel account, row) of an event the clocks care about."""
    row = event.payload.get("conversation") if event.type.startswith("conversation.") else None
    if row is None:
        row = event.payload
        if event.type == "message.received" and row.get("sender_type") != "contact":
            return None
        if event.type == "message.sent" and row.get("sender_type") != "user":
            return None
        conversation = row.get("conversation_id")
    else:
        conversation = row.get("id")
    account = row.get("channel_account_id")
    if not conversation or not account:
        return None
    return UUID(conversation), UUID(account), row


async def _context(conn: Connection, event: Event) -> Context | None:
    """Locks the conversation's SLA row (made with its default policy when a contact's
    message is the first thing to measure); None when there is nothing to do."""
    subject = _subject(event)
    if subject is None:
        return None
    conversation, account, _ = subject
    org = event.organization_id
    lock = (
        "select policy_id, last_event_id from public.conversation_sla"
        " where organization_id = $1 and conversation_id = $2 for update"
    )
    state = await conn.fetchrow(lock, org, conversation)
    if state is None:
        if event.type != "message.received":
            return None  # no clock ever started: nothing to stop
        policy = await clocks.default_policy(conn, org, account)
        if policy is None:
            return None
        # A worker making the same row at once: this waits for it, then reads its row.
        await conn.execute(
            "insert into public.conversation_sla (organization_id, conversation_id, policy_id)"
            " select $1, $2, $3 where exists (select 1 from public.conversations"
            " where organization_id = $1 and id = $2) on conflict do nothing",
            org,
            conversation,
            policy.id,
        )
        state = await conn.fetchrow(lock, org, conversation)
        if state is None:
            return None  # the conversation is gone
    if state["last_event_id"] >= event.id:
        return None  # applied already, or older than what was
    await conn.execute(
        "update public.conversation_sla set last_event_id = $3, updated_at = now()"
        " where organization_id = $1 and conversation_id = $2",
        org,
        conversation,
        event.id,
    )
    found = state["policy_id"] and await clocks.policy_by_id(conn, org, state["policy_id"])
    # its policy deleted: new clocks follow the defaults
    policy = found or await clocks.default_policy(conn, org, account)
    return Context(
        conn=conn,
        organization_id=org,
        conversation_id=conversation,
        channel_account_id=account,
        policy=policy,
        schedule=await clocks.schedule_for(conn, org, account),
    )


async def apply_event(conn: Connection, event: Event) -> None:
    ctx = await _context(conn, event)
    if ctx is None:
        return
    subject = _subject(event)
    assert subject is not None
    row = subject[2]
    if event.type == "message.received":
        at = event.created_at
        # the response clocks running, and whether the first response was ever timed
        seen = await conn.fetch(
            "select kind, stopped_at is null as running from public.sla_clocks"
            " where organization_id = $1 and conversation_id = $2 and kind = any($3::text[])"
            " and (stopped_at is null or kind = 'first_response')",
            ctx.organization_id,
            ctx.conversation_id,
            list(RESPONSES),
        )
        if not any(r["running"] for r in seen):  # else the contact waits already
            first = any(r["kind"] == "first_response" for r in seen)
            await clocks.start(ctx, "next_response" if first else "first_response", at)
        await clocks.start(ctx, "resolution", at)
    elif event.type == "message.sent":
        await clocks.stop(ctx, RESPONSES, event.created_at)
    elif event.type == "conversation.status_changed":
        status, previous = row.get("status"), event.payload.get("previous_status")
        if status == "resolved":
            await clocks.stop(ctx, ("resolution",), event.created_at)
            await clocks.stop(ctx, RESPONSES, event.created_at, cancel=True)
        elif previous == "resolved":
            await clocks.start(ctx, "resolution", event.created_at)


class SlaConsumer(Consumer):
    name: ClassVar[str] = "sla"
    event_types: ClassVar[frozenset[str] | None] = EVENT_TYPES

    async def fan_out(
        self, *, conn: Connection, events: Sequence[Event]
    ) -> list[tuple[int, UUID | None]]:
        """Only events of organizations measuring SLAs: one with a policy, or with a
        clock still running (its policies deleted since)."""
        wanted = [e for e in events if self.wants(e.type)]
        if not wanted:
            return []
        measuring = {
            r["org"]
            for r in await conn.fetch(
                "select o as org from unnest($1::uuid[]) o"
                " where exists (select 1 from public.sla_policies p where p.organization_id = o)"
                " or exists (select 1 from public.sla_clocks c"
                "            where c.organization_id = o and c.stopped_at is null)",
                list({e.organization_id for e in wanted}),
            )
        }
        return [(e.id, None) for e in wanted if e.organization_id in measuring]

    async def handle(
        self, *, runtime: Runtime, deliveries: Sequence[Claimed], now: datetime, deadline: float
    ) -> list[Result]:
        results: list[Result] = []
        for delivery in deliveries:  # in event order: one conversation's events stay ordered
            if time.monotonic() > deadline:
                results.append(RELEASED)  # the lease is ending: left for the next batch
                continue
            try:
                async with runtime.db.service_tx() as conn:
                    await apply_event(conn, delivery.event)
                results.append(Result("done"))
            except Exception as exc:  # this delivery is retried; the others go on
                results.append(retry(f"{type(exc).__name__}: {exc}"))
        return results


# Running clocks past due and not yet marked, across organizations (sla_clocks_due_idx).
BREACH = """
with due as (
  select id from public.sla_clocks
   where stopped_at is null and breached_at is null and due_at <= $1
   order by due_at
   limit $2
     for update skip locked
)
update public.sla_clocks c set breached_at = c.due_at
  from due where c.id = due.id
returning c.organization_id, c.conversation_id, c.id, c.kind, c.policy_id,
          c.business_hours_only, c.started_at, c.due_at
"""


async def sweep(runtime: Runtime, *, now: datetime, limit: int = 500) -> dict[str, int]:
    """Marks running clocks past their due time breached, emitting sla.breached for
    each in the same transaction; batches until none is left."""
    breached = 0
    while True:
        async with runtime.db.service_tx() as conn:
            rows = await conn.fetch(BREACH, now, limit)
            if rows:
                await conn.execute(
                    "select app.emit(o, 'sla.breached', c, b)"
                    " from unnest($1::uuid[], $2::uuid[], $3::jsonb[]) u(o, c, b)",
                    [r["organization_id"] for r in rows],
                    [r["conversation_id"] for r in rows],
                    [clocks.breach_body(r["conversation_id"], dict(r)) for r in rows],
                )
        breached += len(rows)
        if len(rows) < limit:
            return {"breached": breached}
