"""Sending a message from an agent into a conversation.

The message is inserted as `queued` under the agent's RLS (so only a member can
post into that conversation); `shared.inbox.outbound` then claims it, calls the
provider and records the outcome — `sent` with the provider's id, `failed` with
its refusal, or `unknown` when the provider may have sent it — with every attempt.
An `Idempotency-Key` makes a retried request send at most once.

A WhatsApp template (`template`) is how a conversation is reopened outside the
24-hour customer-service window: free-form messages are refused there, and a
template is checked against its stored variables and status before any call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field, HttpUrl, model_validator

from shared import idempotency
from shared.auth import UserPrincipal
from shared.channels.base import OutboundMessage, Thread
from shared.channels.registry import channel_named
from shared.channels.whatsapp.templates import TemplateSend, prepare_send
from shared.errors import AppError, NotFound, Unprocessable
from shared.inbox.accounts import load_account, webhook_url
from shared.inbox.outbound import MESSAGE_COLUMNS, Outbound, deliver, held
from shared.runtime import Runtime
from shared.templates import whatsapp as wa_templates
from shared.templates.library import TextTemplateSend, render_text_template

SCOPE = "send-message"


class SendRequest(BaseModel):
    conversation_id: UUID
    text: str | None = Field(default=None, min_length=1, max_length=4096)
    media_url: HttpUrl | None = None
    media_type: Literal["image", "audio", "video", "document"] | None = None
    template: TemplateSend | None = None
    text_template: TextTemplateSend | None = Field(
        default=None, description="The organization's text template, filled server-side"
    )

    @model_validator(mode="after")
    def _something_to_send(self) -> SendRequest:
        if self.text_template is not None:
            if self.text is not None or self.template is not None:
                raise ValueError("a text_template stands for the text: no text or template")
            if (self.media_url is None) != (self.media_type is None):
                raise ValueError("media_url and media_type go together")
            return self
        if self.template is not None:
            if self.text is not None or self.media_url is not None:
                raise ValueError("a template is sent alone: no text or media_url with it")
            return self
        if self.text is None and self.media_url is None:
            raise ValueError("send text, media_url, a template, or text and media_url")
        if (self.media_url is None) != (self.media_type is None):
            raise ValueError("media_url and media_type go together")
        return self


async def send_message(
    runtime: Runtime, *, user: UserPrincipal, request: SendRequest, key: str | None
) -> idempotency.Answer:
    """Send once per key: a retry gets the first answer, or the message's state."""
    if key is None:
        return await deliver(runtime, await prepare(runtime, user=user, request=request), None)
    begun = await idempotency.begin(
        runtime.db,
        principal=user,
        scope=SCOPE,
        key=key,
        fingerprint=idempotency.request_hash(request.model_dump(mode="json")),
        claim_seconds=runtime.settings.claim_seconds,
    )
    if isinstance(begun, idempotency.Answer):
        return begun
    if isinstance(begun, idempotency.Held):
        return await held(runtime, begun)
    try:
        job = await prepare(runtime, user=user, request=request)
    except AppError as exc:
        await begun.settle(runtime.db, exc)
        raise
    except BaseException:
        async with runtime.db.service_tx() as conn:
            await begun.release(conn)
        raise
    # From here the key follows the message (linked when the send starts).
    return await deliver(runtime, job, begun)


async def prepare(runtime: Runtime, *, user: UserPrincipal, request: SendRequest) -> Outbound:
    """Check the conversation, channel and contact as the agent; store the message queued."""
    async with runtime.db.user_tx(user) as conn:
        conversation = await conn.fetchrow(
            """
            select c.id, c.organization_id, c.contact_id, c.channel_account_id,
                   c.last_inbound_at, c.thread_key, c.subject,
                   a.channel::text as channel, a.status as account_status,
                   (select k.opted_out_channels::text[] from public.contacts k
                     where k.id = c.contact_id) as opted_out_channels,
                   array(select m.provider_message_id from public.messages m
                          where m.organization_id = c.organization_id
                            and m.conversation_id = c.id and m.provider_message_id is not null
                          order by m.created_at desc limit 20) as latest
              from public.conversations c
              join public.channel_accounts a on a.id = c.channel_account_id
             where c.id = $1
            """,
            request.conversation_id,
        )
        if conversation is None:
            raise NotFound("No such conversation")
        channel = channel_named(conversation["channel"])
        if conversation["channel"] in conversation["opted_out_channels"]:
            raise Unprocessable(
                f"The contact opted out of {conversation['channel']} messages",
                code="opted_out",
            )
        if conversation["account_status"] != "active":
            raise Unprocessable("This channel account is disabled", code="account_disabled")
        text, content_type = request.text, str(request.media_type or "text")
        if request.text_template is not None:  # 422s here, before any provider call
            text = await render_text_template(
                conn=conn,
                user_id=user.user_id,
                conversation_id=conversation["id"],
                send=request.text_template,
            )
        if request.template is not None:
            if conversation["channel"] != "whatsapp":
                raise Unprocessable(
                    f"Template messages are WhatsApp's; send text on {conversation['channel']}",
                    code="templates_not_supported",
                )
            template = await wa_templates.find(
                conn=conn,
                channel_account_id=conversation["channel_account_id"],
                name=request.template.name,
                language=request.template.language,
            )
            graph, text = prepare_send(template, request.template)
            options, content_type = {"template": graph}, "template"
        else:
            options = channel.window_options(conversation["last_inbound_at"], datetime.now(UTC))
            channel.check_outbound(text=text, media_type=request.media_type)
        recipient = await conn.fetchval(
            "select external_id from public.contact_identities"
            " where organization_id = $1 and contact_id = $2 and channel = $3"
            " order by created_at desc limit 1",
            conversation["organization_id"],
            conversation["contact_id"],
            conversation["channel"],
        )
        if recipient is None:
            raise Unprocessable(f"The contact has no {conversation['channel']} address")
        attachments = (
            [{"type": request.media_type, "url": str(request.media_url)}]
            if request.media_url
            else []
        )
        message = await conn.fetchrow(
            f"""
            insert into public.messages
              (organization_id, conversation_id, channel_account_id, direction, sender_type,
               sender_id, content_type, body, attachments, status)
            values ($1, $2, $3, 'outbound', 'user', $4, $5, $6, $7, 'queued')
            returning {MESSAGE_COLUMNS}
            """,
            conversation["organization_id"],
            conversation["id"],
            conversation["channel_account_id"],
            user.user_id,
            content_type,
            text,
            attachments,
        )

    assert message is not None
    outbound = OutboundMessage(
        to=recipient,
        callback_url=webhook_url(
            runtime.settings, conversation["channel"], conversation["channel_account_id"]
        ),
        thread=Thread(
            key=conversation["thread_key"],
            subject=conversation["subject"],
            references=list(reversed(conversation["latest"])),
        ),
        text=text,
        media_url=str(request.media_url) if request.media_url else None,
        media_type=request.media_type,
        metadata=options,
    )
    async with runtime.db.service_tx() as conn:
        account = await load_account(conn=conn, account_id=conversation["channel_account_id"])
    return Outbound(message=message, channel=channel, account=account, outbound=outbound)
