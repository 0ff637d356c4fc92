"""The `bots` consumer of the events worker: inbound messages and new conversations.

Fan-out keeps only the events a bot may act on: an organization with published,
triggered flows, or a message in a conversation with a live session. Most inbound
messages are handled before the worker sees them (`shared.bots.inline`, right after
the webhook answers); the worker's delivery then finds them handled and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar
from uuid import UUID

from shared.bots.inbound import handle_message, handle_new_conversation
from shared.bots.sessions import start
from shared.db import Connection
from shared.errors import Conflict, NotFound
from shared.events.base import Claimed, Consumer, Event, Result, retry
from shared.runtime import Runtime

log = logging.getLogger("connectgain.bots")
# Written by the automation action start_bot_flow: {flow_id, rule_id}, the conversation.
START_REQUESTED = "bot.start_requested"

# The events a bot may act on, among these: the organization has a triggered flow, or
# the message's conversation has a live session.
WANTED = """
select ev.id from unnest($1::bigint[], $2::uuid[], $3::text[], $4::uuid[]) ev(id, org, type, conv)
 where ev.type = 'bot.start_requested'
    or exists (select 1 from public.bot_flows f
                where f.organization_id = ev.org and f.enabled
                  and f.published_version_id is not null and f.triggers <> '[]'::jsonb)
    or (ev.type = 'message.received' and exists (
          select 1 from public.bot_sessions s
           where s.conversation_id = ev.conv and s.status in ('active', 'waiting')))
 order by ev.id
"""


def conversation_of(event: Event) -> UUID | None:
    if event.type == "conversation.created":
        return event.aggregate_id
    raw = event.payload.get("conversation_id")
    return UUID(raw) if isinstance(raw, str) else None


class BotConsumer(Consumer):
    name: ClassVar[str] = "bots"
    event_types: ClassVar[frozenset[str] | None] = frozenset(
        {"message.received", "conversation.created", START_REQUESTED}
    )

    async def fan_out(
        self, *, conn: Connection, events: Sequence[Event]
    ) -> list[tuple[int, UUID | None]]:
        wanted = [e for e in events if self.wants(e.type)]
        if not wanted:
            return []
        rows = await conn.fetch(
            WANTED,
            [e.id for e in wanted],
            [e.organization_id for e in wanted],
            [e.type for e in wanted],
            [conversation_of(e) for e in wanted],
        )
        return [(r["id"], None) for r in rows]

    async def handle(
        self, *, runtime: Runtime, deliveries: Sequence[Claimed], now: datetime, deadline: float
    ) -> list[Result]:
        results: list[Result] = []
        for delivery in deliveries:  # in order: a conversation's messages one after another
            event = delivery.event
            try:
                if event.aggregate_id is None:
                    pass
                elif event.type == START_REQUESTED:
                    await _start_requested(runtime, event)
                elif event.type == "message.received":
                    await handle_message(
                        runtime,
                        organization_id=event.organization_id,
                        message_id=event.aggregate_id,
                    )
                else:
                    await handle_new_conversation(
                        runtime,
                        organization_id=event.organization_id,
                        conversation_id=event.aggregate_id,
                    )
                results.append(Result("done"))
            except Exception as exc:  # one event's fault fails it alone, to be retried
                log.exception("bot step failed for event %s", event.id)
                results.append(retry(f"{type(exc).__name__}: {exc}"))
        return results


async def _start_requested(runtime: Runtime, event: Event) -> None:
    """The automation action: a live session or a flow gone since is not an error."""
    assert event.aggregate_id is not None
    try:
        await start(
            runtime,
            organization_id=event.organization_id,
            flow_id=UUID(str(event.payload.get("flow_id"))),
            conversation_id=event.aggregate_id,
            started_by={"type": "automation", "rule_id": event.payload.get("rule_id")},
        )
    except (Conflict, NotFound) as exc:
        log.info("start_bot_flow for event %s: %s", event.id, exc.message)
