"""What every channel module provides, and the normalised shapes the inbox works with.

A channel module verifies the provider's signature, splits a webhook body into
events (each with the provider's own unique id, the dedupe key), parses each
event into one of the normalised shapes below, and sends outbound messages.
Everything else — storing, threading, statuses, realtime — is the inbox's.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from shared import safejson
from shared.channels.http import ProviderClient
from shared.errors import AppError, BadRequest, Unprocessable

ContentType = Literal[
    "text", "image", "audio", "video", "document", "location", "sticker", "contacts",
    "template", "interactive", "unsupported",
]  # fmt: skip


@dataclass(frozen=True)
class Account:
    """A connected channel account with its secrets (loaded only server-side)."""

    id: UUID
    organization_id: UUID
    channel: str
    name: str
    external_id: str
    settings: dict[str, Any]
    status: str
    secrets: dict[str, Any] = field(repr=False)

    def secret(self, name: str) -> str:
        value = self.secrets.get(name)
        if not value:
            raise AppError(f"The {self.channel} account has no {name} configured")
        return str(value)


@dataclass(frozen=True)
class WebhookRequest:
    """A provider's HTTP request as the channel needs it: raw bytes, headers, form."""

    method: str
    url: str  # the public URL the provider called (settings.public_base_url based)
    headers: Mapping[str, str]  # lower-case names
    query: Mapping[str, str]
    body: bytes
    form: list[tuple[str, str]] | None = None  # form-encoded / multipart text fields
    files: list[dict[str, Any]] = field(default_factory=list)  # multipart file metadata

    def json(self) -> Any:
        """The body as strict JSON (no NaN, bounded nesting); BadRequest otherwise."""
        return safejson.loads(self.body)

    def form_dict(self) -> dict[str, str]:
        if self.form is None:
            raise BadRequest("The body is not a form")
        return dict(self.form)


@dataclass(frozen=True)
class Reply:
    """A plain answer a channel gives directly (e.g. Meta's verification challenge)."""

    status: int
    text: str


class RawEvent(BaseModel):
    provider_event_id: str
    event_type: str
    payload: dict[str, Any]


MALFORMED = "malformed"


def malformed(item: Any, error: str, **context: Any) -> RawEvent:
    """A part of a verified delivery that is not the provider's shape (an entry, a
    change, a message): kept as an event of its own, which fails with `error`,
    while the delivery's other parts are processed."""
    digest = hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()
    return RawEvent(
        provider_event_id=f"{MALFORMED}:{digest[:40]}",
        event_type=MALFORMED,
        payload={**context, "item": item, "error": error},
    )


# ---- normalised inbound ------------------------------------------------------------------


class Sender(BaseModel):
    external_id: str
    name: str | None = None
    phone: str | None = None  # as the provider gives it; normalised to E.164 by the inbox
    email: str | None = None
    avatar_url: str | None = None


class Attachment(BaseModel):
    type: str
    media_id: str | None = None  # the provider's media id, downloaded later
    url: str | None = None
    mime_type: str | None = None
    filename: str | None = None
    caption: str | None = None
    size: int | None = None


# What a parser makes of a message's content: its type, text, attachments and metadata.
Content = tuple[ContentType, str | None, list[Attachment], dict[str, Any]]


def attached(
    kind: ContentType,
    item: Mapping[str, Any],
    *,
    caption: str | None,
    id_key: str,
    filename_key: str,
    size_key: str | None = None,
) -> Content:
    """A message that is one file (its caption the text), from the provider's file
    object under the provider's own key names."""
    attachment = Attachment(
        type=str(kind),
        media_id=item.get(id_key),
        mime_type=item.get("mime_type"),
        filename=item.get(filename_key),
        caption=caption,
        size=item.get(size_key) if size_key else None,
    )
    return kind, caption, [attachment], {}


class Thread(BaseModel):
    """Which conversation a message belongs to beyond "this contact on this account"."""

    key: str = ""  # '' for chats: one thread per contact and account
    subject: str | None = None
    references: list[str] = Field(default_factory=list)  # provider ids of earlier messages


class InboundMessage(BaseModel):
    """A message in a conversation with `sender`, the contact.

    An echo is one the business sent from elsewhere (the provider's own app, another
    tool) to the contact: it is recorded as outbound, and a message we sent ourselves
    is recognised by its provider id instead of being stored twice.
    """

    kind: Literal["message"] = "message"
    provider_message_id: str
    sender: Sender
    echo: bool = False
    content_type: ContentType
    body: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime
    thread: Thread = Field(default_factory=Thread)
    edited: bool = False  # an edit of an earlier message with the same provider id
    # The contact opting out of this channel (True), back in (False), or neither.
    opt_out: bool | None = None


class StatusUpdate(BaseModel):
    """A status of one message we sent, or — with a watermark — of every message we
    sent to the contact `recipient` up to that time (Messenger's delivery/read)."""

    kind: Literal["status"] = "status"
    provider_message_id: str | None = None
    watermark: datetime | None = None
    recipient: str | None = None  # the contact's external id, for watermarks
    status: Literal["sent", "delivered", "read", "failed"]
    occurred_at: datetime
    error: dict[str, Any] | None = None


class Ignored(BaseModel):
    kind: Literal["ignored"] = "ignored"
    reason: str


Parsed = InboundMessage | StatusUpdate | Ignored


# ---- outbound ---------------------------------------------------------------------------------


class OutboundMessage(BaseModel):
    to: str  # the contact's identity on this channel (wa_id, chat id, phone, e-mail …)
    # The conversation it continues: subject, and the provider ids of its latest
    # messages (oldest first), for channels that thread replies (e-mail).
    thread: Thread = Field(default_factory=Thread)
    # Our webhook for this account, for providers that report statuses to a URL per message.
    callback_url: str | None = None
    text: str | None = None
    media_url: str | None = None
    media_type: Literal["image", "audio", "video", "document"] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class SendResult(BaseModel):
    provider_message_id: str
    response: dict[str, Any] = Field(default_factory=dict)


class Connected(BaseModel):
    """What connecting an account produced: its provider id, settings and secrets."""

    external_id: str
    settings: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, Any] = Field(default_factory=dict)


class Channel(ABC):
    """One provider. Stateless: every call gets the account it acts for."""

    name: ClassVar[str]
    # What an admin provides to connect an account (validated at the edge).
    Setup: ClassVar[type[BaseModel]]
    # How many hours after the contact's last message free-form replies are allowed.
    reply_window_hours: ClassVar[int | None] = None
    # The media types the provider posts deliveries in (documented in OpenAPI).
    body_types: ClassVar[tuple[str, ...]] = ("application/json",)
    # The largest delivery the provider legitimately sends; None: settings.max_body_bytes.
    max_body_bytes: ClassVar[int | None] = None

    def window_options(self, last_inbound_at: datetime | None, now: datetime) -> dict[str, Any]:
        """Send options the provider needs given when the contact last wrote (passed on
        as OutboundMessage.metadata); Unprocessable when no free-form reply is allowed."""
        hours = self.reply_window_hours
        if hours is not None and (
            last_inbound_at is None or now - last_inbound_at > timedelta(hours=hours)
        ):
            raise Unprocessable(
                f"The {hours}-hour customer service window is closed: the contact has not"
                " written since. Send an approved template message instead.",
                code="outside_window",
            )
        return {}

    def check_outbound(self, *, text: str | None, media_type: str | None) -> None:  # noqa: B027
        """Unprocessable when the provider cannot carry this message (checked before the
        message is stored, so a refusal leaves nothing behind). Anything goes by default."""

    @abstractmethod
    async def connect(self, client: ProviderClient, *, setup: Any, webhook_url: str) -> Connected:
        """Check the credentials with the provider and register our webhook where it can."""

    async def disconnect(self, client: ProviderClient, account: Account) -> None:  # noqa: B027
        """Undo what connect registered at the provider (nothing by default)."""

    async def fetch_profile(
        self, client: ProviderClient, account: Account, external_id: str
    ) -> Sender | None:
        """Name and avatar of a new contact, where the provider has a profile API."""
        return None

    def handshake(self, request: WebhookRequest, account: Account) -> Reply | None:
        """Answer a provider's GET verification; None when the channel has none."""
        return None

    @abstractmethod
    def verify(self, request: WebhookRequest, account: Account) -> str | None:
        """Raise Unauthorized unless the request is signed by the provider for this account.

        Providers that sign a one-time token return it: the pipeline refuses a
        token it has seen before (a replay) in the same transaction that stores
        the events."""

    @abstractmethod
    def events(self, request: WebhookRequest, account: Account) -> list[RawEvent]:
        """Split a verified body into events with unique provider ids; BadRequest if malformed."""

    @abstractmethod
    def parse(self, event: RawEvent, account: Account) -> Parsed:
        """One stored event in the normalised shape."""

    @abstractmethod
    async def send(
        self, client: ProviderClient, account: Account, message: OutboundMessage
    ) -> SendResult:
        """Send through the provider; raises ProviderError when it refuses."""
