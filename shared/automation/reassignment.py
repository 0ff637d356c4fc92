"""Reassigning the open conversations of a member who goes offline or leaves, where the
organization asks for it (organizations.reassign_unavailable), by its method."""

from __future__ import annotations

from uuid import UUID

from shared.automation import assignment
from shared.events.base import Event
from shared.runtime import Runtime


async def reassign(runtime: Runtime, event: Event) -> None:
    """A member went offline or left: their open conversations go to available agents,
    by the organization's method (nobody available: unassigned, back to the queue)."""
    org = event.organization_id
    user = UUID(str(event.payload["user_id"]))
    async with runtime.db.service_tx() as conn:
        method = await conn.fetchval(
            "select reassign_unavailable from public.organizations where id = $1", org
        )
        if method in (None, "off"):
            return
        if event.type == "member.availability_changed":
            still = await conn.fetchval(
                "select availability from public.member_availability"
                " where organization_id = $1 and user_id = $2",
                org,
                user,
            )
            if still != "offline":
                return
            ids = [
                r["id"]
                for r in await conn.fetch(
                    "select id from public.conversations where organization_id = $1"
                    " and assignee_id = $2 and status <> 'resolved' order by last_message_at",
                    org,
                    user,
                )
            ]
        else:
            ids = [UUID(str(i)) for i in event.payload.get("conversation_ids") or []]
        for conversation in ids:
            chosen = await assignment.choose(
                conn=conn, organization_id=org, method=method, exclude=[user]
            )
            await assignment.assign_conversation(
                conn=conn, organization_id=org, conversation_id=conversation, user_id=chosen
            )
