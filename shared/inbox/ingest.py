"""Recording what a channel reported: new messages into their conversation, statuses
onto the messages we sent. Runs inside the webhook's service transaction."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from shared.channels.base import Account, InboundMessage, StatusUpdate, Thread
from shared.db import Connection
from shared.errors import AppError
from shared.inbox.contacts import resolve_contact


class MessageNotYetKnown(AppError):
    """A status arrived before the message it is about; the retry job will apply it."""

    code = "message_not_yet_known"


@dataclass(frozen=True)
class Recorded:
    message_id: UUID | None  # None: a duplicate, nothing new
    contact_id: UUID | None = None
    new_contact: bool = False


async def _conversation_by_reference(
    conn: Connection, account: Account, thread: Thread
) -> UUID | None:
    if not thread.references:
        return None
    found: UUID | None = await conn.fetchval(
        "select conversation_id from public.messages"
        " where channel_account_id = $1 and provider_message_id = any($2)"
        " order by created_at desc limit 1",
        account.id,
        thread.references,
    )
    return found


async def open_conversation(
    *, conn: Connection, account: Account, contact_id: UUID, message: InboundMessage
) -> UUID:
    """The conversation a new inbound message belongs to, reopened and bumped.

    A reply to a known message joins that message's conversation; otherwise the
    contact's unresolved conversation on this account and thread, or a new one.
    """
    at = message.occurred_at
    referenced = await _conversation_by_reference(conn, account, message.thread)
    if referenced is not None:
        await conn.execute(
            "update public.conversations set status = 'open', snoozed_until = null,"
            " last_message_at = greatest(last_message_at, $2),"
            " last_inbound_at = greatest(last_inbound_at, $2), unread_count = unread_count + 1"
            " where id = $1",
            referenced,
            at,
        )
        return referenced
    conversation: UUID = await conn.fetchval(
        """
        insert into public.conversations as c
          (organization_id, contact_id, channel_account_id, thread_key, subject,
           last_message_at, last_inbound_at, unread_count)
        values ($1, $2, $3, $4, $5, $6, $6, 1)
        on conflict (organization_id, channel_account_id, contact_id, thread_key)
          where status <> 'resolved'
        do update set status = 'open', snoozed_until = null,
                      last_message_at = greatest(c.last_message_at, excluded.last_message_at),
                      last_inbound_at = greatest(c.last_inbound_at, excluded.last_inbound_at),
                      unread_count = c.unread_count + 1
        returning id
        """,
        account.organization_id,
        contact_id,
        account.id,
        message.thread.key,
        message.thread.subject,
        at,
    )
    return conversation


async def record_inbound(
    *, conn: Connection, account: Account, message: InboundMessage
) -> Recorded:
    existing = await conn.fetchrow(
        "select id, direction::text from public.messages"
        " where channel_account_id = $1 and provider_message_id = $2",
        account.id,
        message.provider_message_id,
    )
    if existing is not None:
        if message.edited:
            await conn.execute(
                "update public.messages set body = $2, attachments = $3,"
                " metadata = metadata || $4 where id = $1",
                existing["id"],
                message.body,
                [a.model_dump(exclude_none=True) for a in message.attachments],
                {"edited_at": message.occurred_at.isoformat()},
            )
        return Recorded(message_id=None)

    contact_id, new_contact = await resolve_contact(
        conn=conn, account=account, sender=message.sender
    )
    conversation_id = await open_conversation(
        conn=conn, account=account, contact_id=contact_id, message=message
    )
    metadata = dict(message.metadata)
    if message.edited:
        metadata["edited_at"] = message.occurred_at.isoformat()
    message_id: UUID | None = await conn.fetchval(
        """
        insert into public.messages
          (organization_id, conversation_id, channel_account_id, direction, sender_type,
           sender_id, content_type, body, attachments, metadata, provider_message_id,
           status, created_at)
        values ($1, $2, $3, 'inbound', 'contact', null, $4, $5, $6, $7, $8, 'received', $9)
        on conflict (channel_account_id, provider_message_id) do nothing
        returning id
        """,
        account.organization_id,
        conversation_id,
        account.id,
        message.content_type,
        message.body,
        [a.model_dump(exclude_none=True) for a in message.attachments],
        metadata,
        message.provider_message_id,
        message.occurred_at,
    )
    return Recorded(message_id=message_id, contact_id=contact_id, new_contact=new_contact)


# The timestamps a status fills in: reaching a step implies the earlier ones.
_STEP_COLUMNS = {
    "sent": ("sent_at",),
    "delivered": ("sent_at", "delivered_at"),
    "read": ("sent_at", "delivered_at", "read_at"),
    "failed": (),
}


async def apply_status(*, conn: Connection, account: Account, status: StatusUpdate) -> Recorded:
    columns = _STEP_COLUMNS[status.status]
    stamps = "".join(f", {c} = coalesce({c}, $5)" for c in columns)
    message_id: UUID | None = await conn.fetchval(
        f"""
        update public.messages set status = $3, error = coalesce($4, error){stamps}
         where channel_account_id = $1 and provider_message_id = $2 and direction = 'outbound'
        returning id
        """,
        account.id,
        status.provider_message_id,
        status.status,
        status.error,
        *([status.occurred_at] if columns else []),
    )
    if message_id is None:
        raise MessageNotYetKnown(f"No outbound message {status.provider_message_id} yet")
    return Recorded(message_id=message_id)
