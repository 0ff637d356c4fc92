"""Running a rule's actions against an event's records, in the consumer's transaction.

Each action runs in a savepoint: one that fails (a value the custom field refuses,
a stage of another pipeline, nobody available) is logged with its error and the
others still run. Sending a message calls the provider, so it is not done here:
it is returned to be sent after the transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg

from shared.automation import assignment
from shared.automation.actions import (
    Action,
    AddNote,
    AddTag,
    Assign,
    CreateTask,
    MoveDeal,
    RemoveTag,
    SendMessage,
    SendWebhook,
    SetCustomField,
    SetPriority,
    SetStatus,
    StartBotFlow,
    Stop,
    target_of,
)
from shared.automation.triggers import ENTITIES
from shared.db import Connection
from shared.errors import AppError

WEBHOOK_EVENT = "automation.webhook"
# A send_message outcome until the message is sent (after the commit): a delivery handled
# again finds it so and sends, under the same Idempotency-Key.
PENDING_SEND = "to be sent once the rule's changes commit"


@dataclass
class Context:
    organization_id: UUID
    rule_id: UUID
    rule_name: str
    trigger: str
    event_id: int
    records: dict[str, UUID]
    run_id: int = 0
    author: UUID | None = None  # the rule's author: whom a message is sent as
    sends: list[tuple[int, SendMessage]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    stop: bool = False


class Skipped(Exception):
    """The action has nothing to act on (e.g. the deal has no contact)."""


def _record(ctx: Context, name: str | None) -> UUID:
    if name is None or name not in ctx.records:
        raise Skipped(f"the event has no {name}")
    return ctx.records[name]


async def perform(conn: Connection, ctx: Context, actions: list[Action]) -> list[dict[str, Any]]:
    """Each action's outcome, {"type", "ok", "detail" | "error"}, in order."""
    outcomes: list[dict[str, Any]] = []
    for index, action in enumerate(actions):
        outcome: dict[str, Any] = {"type": action.type}
        try:
            async with conn.transaction():
                detail = await _one(conn, ctx, index, action)
            outcome.update(ok=True, detail=detail)
        except Skipped as exc:
            outcome.update(ok=False, error=f"skipped: {exc}")
        except AppError as exc:
            outcome.update(ok=False, error=exc.message)
        except asyncpg.PostgresError as exc:
            outcome.update(ok=False, error=str(exc)[:500])
        outcomes.append(outcome)
        if ctx.stop:
            break
    return outcomes


async def _one(conn: Connection, ctx: Context, index: int, action: Action) -> Any:
    org = ctx.organization_id
    target = target_of(ctx.trigger, action)
    if isinstance(action, Stop):
        ctx.stop = True
        return "no further rules run for this event"
    if isinstance(action, Assign):
        conversation = _record(ctx, "conversation")
        user = action.user_id
        if action.method != "user":
            user = await assignment.choose(conn=conn, organization_id=org, method=action.method)
            if user is None:
                raise Skipped("no available agent under capacity")
        await assignment.assign_conversation(
            conn=conn, organization_id=org, conversation_id=conversation, user_id=user
        )
        return {"assignee_id": str(user)}
    if isinstance(action, AddTag | RemoveTag):
        record = _record(ctx, target)
        link = ENTITIES[str(target)].catalog.tags
        assert link is not None
        if isinstance(action, AddTag):
            sql = (
                f"insert into {link.table} (organization_id, {link.column}, tag_id)"
                " values ($1, $2, $3) on conflict do nothing returning true"
            )
        else:
            sql = (
                f"delete from {link.table} where organization_id = $1 and {link.column} = $2"
                " and tag_id = $3 returning true"
            )
        changed = await conn.fetchval(sql, org, record, action.tag_id)
        return {"changed": bool(changed), "on": target}
    if isinstance(action, SetCustomField):
        record = _record(ctx, target)
        table = ENTITIES[str(target)].table
        await conn.execute(
            f"update {table} set custom_fields = custom_fields || jsonb_build_object($3::text,"
            " $4::jsonb) where organization_id = $1 and id = $2",
            org,
            record,
            action.key,
            action.value,
        )
        return {"on": target}
    if isinstance(action, SetStatus | SetPriority):
        column, value = (
            ("status", action.status)
            if isinstance(action, SetStatus)
            else ("priority", action.priority)
        )
        cast = "::public.conversation_status" if column == "status" else ""
        await conn.execute(
            f"update public.conversations set {column} = $3{cast}"
            " where organization_id = $1 and id = $2",
            org,
            _record(ctx, "conversation"),
            value,
        )
        return {column: value}
    if isinstance(action, SendMessage):
        _record(ctx, "conversation")
        ctx.sends.append((index, action))
        return PENDING_SEND
    if isinstance(action, AddNote):
        record = _record(ctx, target)
        note = await conn.fetchval(
            f"insert into public.notes (organization_id, body, {target}_id, author_id)"
            " values ($1, $2, $3, null) returning id",
            org,
            action.body,
            record,
        )
        return {"note_id": str(note)}
    if isinstance(action, CreateTask):
        due = (
            timedelta(minutes=action.due_in_minutes) if action.due_in_minutes is not None else None
        )
        task = await conn.fetchval(
            "insert into public.tasks (organization_id, title, due_at, priority, assignee_id,"
            " contact_id, deal_id, created_by)"
            " values ($1, $2, now() + $3::interval, $4::public.task_priority, $5, $6, $7, null)"
            " returning id",
            org,
            action.title,
            due,
            action.priority,
            action.assignee_id,
            ctx.records.get("contact"),
            ctx.records.get("deal"),
        )
        return {"task_id": str(task)}
    if isinstance(action, MoveDeal):
        moved = await conn.fetchval(
            "update public.deals d set stage_id = s.id, pipeline_id = s.pipeline_id"
            "  from public.stages s"
            " where d.organization_id = $1 and d.id = $2 and s.organization_id = $1"
            "   and s.id = $3 returning true",
            org,
            _record(ctx, "deal"),
            action.stage_id,
        )
        if not moved:
            raise Skipped("the stage is gone")
        return {"stage_id": str(action.stage_id)}
    if isinstance(action, StartBotFlow):
        conversation = _record(ctx, "conversation")
        await conn.execute(
            "insert into public.outbox_events (organization_id, event_type, aggregate_id, payload)"
            " values ($1, 'bot.start_requested', $2, $3)",
            org,
            conversation,
            {"flow_id": str(action.flow_id), "rule_id": str(ctx.rule_id)},
        )
        return {"flow_id": str(action.flow_id), "conversation_id": str(conversation)}
    assert isinstance(action, SendWebhook)
    return await _enqueue_webhook(conn, ctx, action.endpoint_id)


async def _enqueue_webhook(conn: Connection, ctx: Context, endpoint: UUID) -> dict[str, Any]:
    """An event for one endpoint, handed straight to the webhooks consumer: written
    processed (no fan-out to every subscriber), with one due delivery to this endpoint."""
    enabled = await conn.fetchval(
        "select enabled from public.webhook_endpoints where organization_id = $1 and id = $2",
        ctx.organization_id,
        endpoint,
    )
    if enabled is None:
        raise Skipped("the webhook endpoint is gone")
    payload = {
        "rule": {"id": str(ctx.rule_id), "name": ctx.rule_name},
        "trigger": {"type": ctx.trigger, "event_id": ctx.event_id},
        "records": {k: str(v) for k, v in ctx.records.items()},
    }
    event_id = await conn.fetchval(
        "insert into public.outbox_events"
        " (organization_id, event_type, aggregate_id, payload, processed_at)"
        " values ($1, $2, $3, $4, now()) returning id",
        ctx.organization_id,
        WEBHOOK_EVENT,
        ctx.rule_id,
        payload,
    )
    await conn.execute(
        "insert into public.event_deliveries (organization_id, event_id, consumer, target)"
        " values ($1, $2, 'webhooks', $3)",
        ctx.organization_id,
        event_id,
        endpoint,
    )
    return {"event_id": event_id, "endpoint_id": str(endpoint)}
