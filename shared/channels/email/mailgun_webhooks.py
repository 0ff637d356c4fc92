"""What Mailgun posts to a webhook, parsed at the edge: its signature, a route's forward
(the parsed mail as form fields, its attachments as file parts) and an event webhook
(JSON: {"signature": {...}, "event-data": {...}})."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Json,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from shared.channels.base import Attachment, WebhookRequest
from shared.errors import BadRequest, Unauthorized

TOLERANCE_SECONDS = 5 * 60

# RFC 5322 §3.6.4: msg-id = "<" id-left "@" id-right ">". The stdlib parses one
# Message-ID (privately), not In-Reply-To/References lists; bare ids are kept whole.
_MSG_ID = re.compile(r"<([^<>\s]+)>")
_FILE_FIELD = re.compile(r"attachment-\d+")


def message_ids(value: str | None) -> list[str]:
    """The ids of a Message-ID, In-Reply-To or References header, without angle brackets."""
    if not value:
        return []
    return _MSG_ID.findall(value) or value.split()


def sign(*, signing_key: str, timestamp: str, token: str) -> str:
    """Mailgun's signature: hex HMAC-SHA256 of timestamp + token."""
    message = f"{timestamp}{token}".encode()
    return hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()


MediaKind = Literal["image", "audio", "video", "document"]
_KINDS: dict[str, MediaKind] = {"image": "image", "audio": "audio", "video": "video"}


def kind_of(mime: str | None) -> MediaKind:
    return _KINDS.get((mime or "").split("/")[0], "document")


def _errors(exc: ValidationError) -> list[Any]:
    return exc.errors(include_url=False, include_context=False, include_input=False)


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class MailgunSignature(BaseModel):
    model_config = ConfigDict(coerce_numbers_to_str=True)
    timestamp: str = Field(pattern=r"^\d{1,12}$")
    token: str = Field(min_length=1, max_length=200)
    signature: str = Field(min_length=1, max_length=200)


def verify_signature(request: WebhookRequest, *, signing_key: str) -> str:
    """The delivery's one-time token, once its signature and timestamp are right."""
    if request.form is not None:  # a forward signs with form fields
        source: Any = request.form_dict()
    else:  # an event webhook with its "signature" object
        body = request.json()
        if not isinstance(body, dict):
            raise BadRequest("Not a Mailgun webhook body")
        source = body.get("signature")
    try:
        signed = MailgunSignature.model_validate(source)
    except ValidationError:
        raise Unauthorized("Missing Mailgun signature", code="invalid_signature") from None
    expected = sign(signing_key=signing_key, timestamp=signed.timestamp, token=signed.token)
    if not hmac.compare_digest(expected.encode(), signed.signature.encode()):
        raise Unauthorized("Invalid Mailgun signature", code="invalid_signature")
    if abs(time.time() - int(signed.timestamp)) > TOLERANCE_SECONDS:
        raise Unauthorized(
            "The Mailgun signature's timestamp is more than 5 minutes off",
            code="invalid_signature",
        )
    return signed.token


class StoredAttachment(_Loose):
    """store(notify=…) posts attachments as references into Mailgun's storage."""

    url: str
    name: str | None = None
    content_type: str | None = Field(default=None, alias="content-type")
    size: int | None = None


class InboundMail(_Loose):
    """A route's forward (or store notification): the parsed mail as form fields."""

    recipient: str = ""
    sender: str = ""  # SMTP MAIL FROM; the From header is `from_`
    from_: str = Field(default="", alias="from")
    subject: str = ""
    body_plain: str = Field(default="", alias="body-plain")
    stripped_text: str = Field(default="", alias="stripped-text")
    body_html: str | None = Field(default=None, alias="body-html")
    message_headers: Json[list[tuple[str, str]]] = Field(alias="message-headers")
    content_id_map: Json[dict[str, str]] = Field(default_factory=dict, alias="content-id-map")
    attachments: Json[list[StoredAttachment]] = Field(default_factory=list)
    timestamp: str = Field(pattern=r"^\d{1,12}$")

    @field_validator("content_id_map", "attachments", mode="before")
    @classmethod
    def _blank_is_empty(cls, value: Any, info: ValidationInfo) -> Any:
        if value == "":
            return "{}" if info.field_name == "content_id_map" else "[]"
        return value

    def header(self, name: str) -> str | None:
        """A MIME header from message-headers, else from the fields Mailgun adds per header."""
        lower = name.lower()
        pairs = [*self.message_headers, *(self.model_extra or {}).items()]
        return next((str(v) for k, v in pairs if k.lower() == lower), None)

    def author(self) -> tuple[str, str]:
        """Display name and address, from the From header, else the SMTP sender."""
        for raw in (self.from_, self.sender):
            name, address = parseaddr(raw)
            if "@" in address:
                return name, address
        raise ValueError("the mail names no sender address")

    def message_id(self) -> str:
        """Its Message-ID; one derived from its content for the rare mail without, so a
        redelivery is still recognised."""
        ids = message_ids(self.header("Message-Id"))
        if ids:
            return ids[0]
        content = [self.from_, self.header("Date"), self.subject, self.body_plain]
        digest = hashlib.sha256(json.dumps(content).encode()).hexdigest()
        return f"sha256.{digest[:40]}@no-message-id"

    def sent_at(self) -> datetime:
        """Its Date, unless that is missing, unreadable or later than its arrival."""
        arrived = datetime.fromtimestamp(int(self.timestamp), UTC)
        try:
            sent = parsedate_to_datetime(self.header("Date") or "")
            sent = (sent if sent.tzinfo else sent.replace(tzinfo=UTC)).astimezone(UTC)
        except (TypeError, ValueError, OverflowError):  # also a Date past year 9999 in UTC
            return arrived
        return min(sent, arrived)

    def attachment_refs(self, files: list[dict[str, Any]]) -> list[Attachment]:
        """A forward's file parts (attachment-1 …) by name, type and size — the bytes are
        not kept —, or the references into Mailgun's storage that store() posts."""
        forwarded = [
            Attachment(
                type=kind_of(f.get("content_type")),
                mime_type=f.get("content_type"),
                filename=f.get("filename"),
                size=f.get("size"),
            )
            for f in files
            if _FILE_FIELD.fullmatch(str(f.get("field")))
        ]
        stored = [
            Attachment(
                type=kind_of(a.content_type),
                url=a.url,
                mime_type=a.content_type,
                filename=a.name,
                size=a.size,
            )
            for a in self.attachments
        ]
        return forwarded + stored


def forward_fields(form: list[tuple[str, str]]) -> dict[str, str]:
    """A forward's fields by name. A mail with several HTML parts has a body-html field
    for each: all are kept."""
    fields = dict(form)
    html = [value for name, value in form if name == "body-html"]
    if len(html) > 1:
        fields["body-html"] = "\n".join(html)
    return fields


def inbound_mail(fields: dict[str, str]) -> InboundMail:
    try:
        mail = InboundMail.model_validate(fields)
    except ValidationError as exc:
        raise BadRequest("Not a Mailgun route forward", details=_errors(exc)) from exc
    try:
        mail.author()
    except ValueError as exc:
        raise BadRequest(f"Not a Mailgun route forward: {exc}") from exc
    return mail


class EventData(_Loose):
    """An event webhook's event-data (the Events API's event structure)."""

    event: str = Field(min_length=1)
    id: str = Field(min_length=1)
    timestamp: float
    severity: str | None = None
    reason: str | None = None
    delivery_status: dict[str, Any] = Field(default_factory=dict, alias="delivery-status")
    user_variables: dict[str, Any] = Field(default_factory=dict, alias="user-variables")
    message: dict[str, Any] = Field(default_factory=dict)

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, UTC)

    def message_id(self) -> str:
        ids = message_ids((self.message.get("headers") or {}).get("message-id"))
        if not ids:
            raise ValueError(f"the {self.event} event names no message-id")
        return ids[0]


class EventWebhook(BaseModel):
    signature: MailgunSignature
    event_data: EventData = Field(alias="event-data")


def event_webhook(body: Any) -> EventData:
    try:
        return EventWebhook.model_validate(body).event_data
    except ValidationError as exc:
        raise BadRequest("Not a Mailgun event webhook", details=_errors(exc)) from exc
