"""Messenger's and Instagram's `entry[].messaging[]` events: parsed at the edge, then
turned into the inbox's shapes by one handler per kind (`HANDLERS`).

The models name the fields the inbox reads and keep every other field (extra="allow"),
so the raw event stored for the retry job and for bots loses nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared.channels import base

log = logging.getLogger("connectgain.channels.meta")
_T = TypeVar("_T")


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


class Party(_Loose):
    id: str | None = None
    user_ref: str | None = None  # a website-plugin visitor, not a Page-scoped person


class MetaAttachment(_Loose):
    type: str
    payload: dict[str, Any] | None = None
    title: str | None = None
    url: str | None = None


class QuickReply(_Loose):
    payload: str | None = None


class Message(_Loose):
    mid: str
    text: str | None = None
    attachments: list[MetaAttachment] = Field(default_factory=list)
    is_echo: bool = False
    is_deleted: bool = False  # Instagram: the contact unsent a message
    is_unsupported: bool = False  # Instagram: content the API does not carry
    app_id: str | None = None  # echoes: the app that sent it
    quick_reply: QuickReply | None = None
    reply_to: dict[str, Any] | None = None  # {"mid"} or, on Instagram, {"story": {"id", "url"}}
    referral: dict[str, Any] | None = None  # ads, shops and links that started the chat


class Edit(_Loose):
    mid: str
    text: str | None = None
    num_edit: int | None = None


class Delivery(_Loose):
    watermark: int
    mids: list[str] = Field(default_factory=list)


class Read(_Loose):
    watermark: int | None = None  # Messenger
    mid: str | None = None  # Instagram: the message seen


class Postback(_Loose):
    mid: str | None = None
    title: str | None = None
    payload: str | None = None
    referral: dict[str, Any] | None = None


class Event(_Loose):
    sender: Party
    recipient: Party
    timestamp: int | None = None
    message: Message | None = None
    message_edit: Edit | None = None
    delivery: Delivery | None = None
    read: Read | None = None
    postback: Postback | None = None
    reaction: dict[str, Any] | None = None


class Entry(_Loose):
    id: str
    time: int | None = None
    messaging: list[dict[str, Any]] = Field(default_factory=list)
    standby: list[dict[str, Any]] = Field(default_factory=list)
    changes: list[dict[str, Any]] = Field(default_factory=list)


class Webhook(_Loose):
    """The delivery; its entries are checked one by one (MetaMessagingChannel.events)."""

    object: str
    entry: list[Any]


# ---- a message's content -----------------------------------------------------------------


MEDIA: dict[str, base.ContentType] = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "file": "document",
    "sticker": "sticker",
    "template": "template",  # echoes of structured messages
    "reel": "video",
    "ig_reel": "video",
    "story_mention": "image",
}
# Shared links, posts and Messenger's fallback: a link, kept as text.
LINKS = frozenset({"fallback", "share", "ig_post", "post"})
PHONE = re.compile(r"^\+[\d\s().-]{6,20}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _kind(attachment: MetaAttachment) -> base.ContentType:
    payload = attachment.payload or {}
    if attachment.type == "image" and payload.get("sticker_id"):  # Messenger's stickers and 👍
        return "sticker"
    if attachment.type == "location":
        return "location"
    if attachment.type in LINKS:
        return "text" if payload.get("url") or attachment.url else "unsupported"
    return MEDIA.get(attachment.type, "unsupported")


def _attachment(attachment: MetaAttachment) -> base.Attachment:
    payload = attachment.payload or {}
    media_id = next(
        (payload[k] for k in ("sticker_id", "attachment_id", "ig_post_media_id") if payload.get(k)),
        None,
    )
    return base.Attachment(
        type="document" if attachment.type == "file" else attachment.type,
        media_id=str(media_id) if media_id is not None else None,
        url=payload.get("url") or attachment.url,
        caption=payload.get("title") or attachment.title,
    )


def content(m: Message) -> base.Content:
    metadata: dict[str, Any] = {}
    if reply_to := m.reply_to:
        if reply_to.get("mid"):
            metadata["reply_to"] = reply_to["mid"]
        if reply_to.get("story"):
            metadata["reply_to_story"] = reply_to["story"]
    if m.referral:
        metadata["referral"] = m.referral
    attachments = [_attachment(a) for a in m.attachments]
    if m.is_unsupported:
        return "unsupported", m.text, attachments, metadata
    if m.quick_reply is not None:  # a tapped quick reply: its payload is for bots
        metadata["quick_reply"] = m.quick_reply.model_dump(exclude_none=True)
        return "interactive", m.text, attachments, metadata
    if not m.attachments:
        return ("text" if m.text is not None else "unsupported"), m.text, [], metadata
    first = m.attachments[0]
    kind, body = _kind(first), m.text
    payload = first.payload or {}
    if kind == "location":
        coordinates = payload.get("coordinates") or {}
        metadata["location"] = {
            "latitude": coordinates.get("lat"),
            "longitude": coordinates.get("long"),
            "name": first.title,
            "url": first.url,
        }
        body = body or first.title or f"{coordinates.get('lat')},{coordinates.get('long')}"
    elif kind == "text":
        body = body or first.title or payload.get("title") or payload.get("url") or first.url
    elif kind == "template":
        metadata["template"] = payload
    return kind, body, attachments, metadata


def shared_address(m: Message) -> dict[str, str]:
    """Messenger's phone-number and e-mail quick replies send the person's own address
    as the payload: what the inbox matches contacts across channels on."""
    payload = (m.quick_reply.payload or "").strip() if m.quick_reply else ""
    if EMAIL.match(payload):
        return {"email": payload}
    if PHONE.match(payload):
        return {"phone": payload}
    return {}


def when(epoch: int | None) -> datetime:
    """Meta's messaging times are epoch milliseconds (its test console sends seconds)."""
    if epoch is None:
        raise ValueError("the event has no time")
    return datetime.fromtimestamp(epoch / 1000 if epoch > 10**11 else epoch, UTC)


# ---- one handler per kind of event ---------------------------------------------------------


def _present(value: _T | None, kind: str) -> _T:
    """The event's content under its kind's key (a null one is a malformed event)."""
    if value is None:
        raise ValueError(f"the {kind} event has no {kind}")
    return value


def _message(event: Event) -> base.Parsed:
    m = _present(event.message, "message")
    if m.is_deleted:
        return base.Ignored(reason="the contact deleted a message")
    content_type, body, attachments, metadata = content(m)
    # An echo is what the business sent (from us or another tool): its contact is the recipient.
    contact = event.recipient if m.is_echo else event.sender
    address = {} if m.is_echo else shared_address(m)
    if m.is_echo and m.app_id is not None:
        metadata["app_id"] = str(m.app_id)
    return base.InboundMessage(
        provider_message_id=m.mid,
        sender=base.Sender(external_id=str(contact.id), **address),
        echo=m.is_echo,
        content_type=content_type,
        body=body,
        attachments=attachments,
        metadata=metadata,
        occurred_at=when(event.timestamp),
    )


def _edit(event: Event) -> base.Parsed:
    edit = _present(event.message_edit, "message_edit")
    return base.InboundMessage(
        provider_message_id=edit.mid,
        sender=base.Sender(external_id=str(event.sender.id)),
        content_type="text",
        body=edit.text,
        metadata={"num_edit": edit.num_edit},
        occurred_at=when(event.timestamp),
        edited=True,
    )


def _postback(event: Event) -> base.Parsed:
    """A tapped button (postback, Get Started, persistent menu): the contact's turn,
    with the button's payload kept for bots."""
    postback = _present(event.postback, "postback")
    return base.InboundMessage(
        provider_message_id=postback.mid or f"postback:{event.sender.id}:{event.timestamp}",
        sender=base.Sender(external_id=str(event.sender.id)),
        content_type="interactive",
        body=postback.title,
        metadata={"postback": postback.model_dump(exclude_none=True, exclude={"mid"})},
        occurred_at=when(event.timestamp),
    )


def _delivery(event: Event) -> base.Parsed:
    delivery = _present(event.delivery, "delivery")
    at = when(delivery.watermark)
    return base.StatusUpdate(
        status="delivered", watermark=at, recipient=event.sender.id, occurred_at=at
    )


def _read(event: Event) -> base.Parsed:
    # Messenger gives a watermark; Instagram the id of the message seen, at `timestamp`.
    read = _present(event.read, "read")
    seen = when(event.timestamp if event.timestamp is not None else read.watermark)
    watermark = when(read.watermark) if read.watermark is not None else seen
    return base.StatusUpdate(
        status="read", watermark=watermark, recipient=event.sender.id, occurred_at=seen
    )


def _reaction(event: Event) -> base.Parsed:
    reaction = event.reaction or {}
    log.info(
        "reaction %s %s on %s by %s",
        reaction.get("action"),
        reaction.get("emoji") or reaction.get("reaction"),
        reaction.get("mid"),
        event.sender.id,
    )
    return base.Ignored(reason="reactions are not stored")


HANDLERS: dict[str, Callable[[Event], base.Parsed]] = {
    "message": _message,
    "message_edit": _edit,
    "postback": _postback,
    "delivery": _delivery,
    "read": _read,
    "reaction": _reaction,
}
