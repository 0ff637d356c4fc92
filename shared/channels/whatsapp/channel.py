"""WhatsApp Cloud API: webhooks (messages, statuses, template statuses) and sending
(text, media, templates) through the Graph API.

Account: external_id = phone_number_id; secrets access_token, app_secret, verify_token;
settings waba_id, display_phone_number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.channels import base
from shared.channels.http import ProviderClient, accepted_id
from shared.channels.meta.graph import GRAPH_ERRORS, MetaChannel, MetaSettings, MetaSetup
from shared.errors import BadRequest

# ---- the webhook body, parsed at the edge ---------------------------------------------------


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class WaContact(_Loose):
    wa_id: str
    profile: dict[str, Any] = Field(default_factory=dict)


class WaMessage(_Loose):
    id: str
    from_: str = Field(alias="from")
    timestamp: str
    type: str


class WaStatus(_Loose):
    id: str
    status: str
    timestamp: str
    recipient_id: str | None = None
    errors: list[dict[str, Any]] = Field(default_factory=list)


class WaValue(_Loose):
    """A `messages` change; its items are checked one by one (WhatsApp.events)."""

    metadata: dict[str, Any] = Field(default_factory=dict)
    contacts: list[Any] = Field(default_factory=list)
    messages: list[Any] = Field(default_factory=list)
    statuses: list[Any] = Field(default_factory=list)


class WaChange(_Loose):
    field: str
    value: dict[str, Any]


class WaTemplateStatus(_Loose):
    """A `message_template_status_update` change: a template approved, rejected, paused …"""

    event: str
    message_template_id: int | str
    message_template_name: str
    message_template_language: str
    reason: str | None = None


class WaEntry(_Loose):
    id: str
    changes: list[WaChange]


def _time(ts: str) -> datetime:
    return datetime.fromtimestamp(int(ts), UTC)


def _errors(exc: ValidationError) -> str:
    """A validation error without the input it quotes (kept in the event already)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
    )


Item = TypeVar("Item", bound=BaseModel)


def _each(
    items: list[Any],
    model: type[Item],
    event: Callable[[Item], base.RawEvent],
    *,
    part: str,
) -> list[base.RawEvent]:
    """An event per item of a change; one not of the documented shape is kept as a
    malformed event of its own, and the others are processed."""
    events = []
    for item in items:
        try:
            checked = model.model_validate(item)
        except ValidationError as exc:
            events.append(base.malformed(item, _errors(exc), part=part))
            continue
        events.append(event(checked))
    return events


# ---- message types -----------------------------------------------------------------------------


def _media(kind: base.ContentType) -> Callable[[dict[str, Any]], base.Content]:
    def parse(m: dict[str, Any]) -> base.Content:
        media = m.get(str(kind), {})
        return base.attached(
            kind, media, caption=media.get("caption"), id_key="id", filename_key="filename"
        )

    return parse


def _text(m: dict[str, Any]) -> base.Content:
    return "text", m.get("text", {}).get("body"), [], {}


def _location(m: dict[str, Any]) -> base.Content:
    place = m.get("location", {})
    label = place.get("name") or place.get("address")
    body = label or f"{place.get('latitude')},{place.get('longitude')}"
    return "location", body, [], {"location": place}


def _contacts(m: dict[str, Any]) -> base.Content:
    cards = m.get("contacts", [])
    names = [c.get("name", {}).get("formatted_name") for c in cards]
    return "contacts", ", ".join(n for n in names if n) or None, [], {"contacts": cards}


def _interactive(m: dict[str, Any]) -> base.Content:
    interactive = m.get("interactive", {})
    reply = interactive.get(interactive.get("type", ""), {})
    return "interactive", reply.get("title"), [], {"reply": reply, "type": interactive.get("type")}


def _button(m: dict[str, Any]) -> base.Content:
    button = m.get("button", {})
    return "interactive", button.get("text"), [], {"payload": button.get("payload")}


def _unsupported(m: dict[str, Any]) -> base.Content:
    return "unsupported", None, [], {"type": m.get("type"), "errors": m.get("errors", [])}


MESSAGE_TYPES: dict[str, Callable[[dict[str, Any]], base.Content]] = {
    "text": _text,
    "image": _media("image"),
    "video": _media("video"),
    "audio": _media("audio"),
    "document": _media("document"),
    "sticker": _media("sticker"),
    "location": _location,
    "contacts": _contacts,
    "interactive": _interactive,
    "button": _button,
}
IGNORED_TYPES = {"reaction", "system", "ephemeral", "request_welcome"}
STATUSES = {"sent", "delivered", "read", "failed"}
TEMPLATE_STATUS = "message_template_status_update"


class WhatsAppSetup(MetaSetup):
    phone_number_id: str = Field(min_length=1, pattern=r"^\d+$")
    waba_id: str = Field(min_length=1, pattern=r"^\d+$")
    display_phone_number: str | None = None
    access_token: str = Field(min_length=1)


class WhatsApp(MetaChannel):
    name: ClassVar[str] = "whatsapp"
    Setup: ClassVar[type[BaseModel]] = WhatsAppSetup
    reply_window_hours: ClassVar[int | None] = 24

    async def connect(
        self, client: ProviderClient, *, setup: Any, webhook_url: str
    ) -> base.Connected:
        # The webhook is subscribed in Meta's app dashboard with webhook_url and the
        # verify token; nothing to register through the API here.
        assert isinstance(setup, WhatsAppSetup)
        return base.Connected(
            external_id=setup.phone_number_id,
            settings={"waba_id": setup.waba_id, "display_phone_number": setup.display_phone_number},
            secrets={
                "access_token": setup.access_token,
                "app_secret": setup.app_secret,
                "verify_token": setup.verify_token,
            },
        )

    def events(self, request: base.WebhookRequest, account: base.Account) -> list[base.RawEvent]:
        body = request.json()
        if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account":
            raise BadRequest("Not a WhatsApp webhook body: no object whatsapp_business_account")
        if not isinstance(body.get("entry"), list):
            raise BadRequest("Not a WhatsApp webhook body: entry is not a list")
        # Each part is checked on its own: a malformed entry, change or message is kept
        # as a failed event of its own, and the others land.
        events: list[base.RawEvent] = []
        for raw_entry in body["entry"]:
            try:
                entry = WaEntry.model_validate(raw_entry)
            except ValidationError as exc:
                events.append(base.malformed(raw_entry, _errors(exc), part="entry"))
                continue
            for change in entry.changes:
                events.extend(self._change(change))
        return events

    def _change(self, change: WaChange) -> list[base.RawEvent]:
        handler = CHANGE_HANDLERS.get(change.field)
        if handler is not None:
            return handler(self, change)
        digest = hashlib.sha256(json.dumps(change.value, sort_keys=True).encode())
        return [
            base.RawEvent(
                provider_event_id=f"{change.field}:{digest.hexdigest()[:40]}",
                event_type=change.field,
                payload=change.model_dump(),
            )
        ]

    def _template_status(self, change: WaChange) -> list[base.RawEvent]:
        # Stored as the change itself: the database applies it to the template it
        # names as the verified event lands (app.apply_template_status).
        try:
            update = WaTemplateStatus.model_validate(change.value)
        except ValidationError as exc:
            return [base.malformed(change.value, _errors(exc), part="change")]
        digest = hashlib.sha256(json.dumps(change.value, sort_keys=True).encode())
        return [
            base.RawEvent(
                provider_event_id=(
                    f"template_status:{update.message_template_id}:{update.event}"
                    f":{digest.hexdigest()[:16]}"
                ),
                event_type=TEMPLATE_STATUS,
                payload=change.model_dump(),
            )
        ]

    def _messages(self, change: WaChange) -> list[base.RawEvent]:
        try:
            value = WaValue.model_validate(change.value)
        except ValidationError as exc:
            return [base.malformed(change.value, _errors(exc), part="change")]
        number = value.metadata.get("phone_number_id")
        contacts = {}
        for contact in value.contacts:
            try:
                card = WaContact.model_validate(contact)
            except ValidationError:
                continue  # only a name is lost: the message still lands
            contacts[card.wa_id] = card.model_dump()

        def message(m: WaMessage) -> base.RawEvent:
            return base.RawEvent(
                provider_event_id=f"message:{m.id}",
                event_type="message",
                payload={
                    "phone_number_id": number,
                    "message": m.model_dump(by_alias=True),
                    "contact": contacts.get(m.from_),
                },
            )

        def status(s: WaStatus) -> base.RawEvent:
            return base.RawEvent(
                provider_event_id=f"status:{s.id}:{s.status}",
                event_type="status",
                payload={"phone_number_id": number, "status": s.model_dump()},
            )

        return [
            *_each(value.messages, WaMessage, message, part="message"),
            *_each(value.statuses, WaStatus, status, part="status"),
        ]

    def parse(self, event: base.RawEvent, account: base.Account) -> base.Parsed:
        payload = event.payload
        if event.event_type == TEMPLATE_STATUS:
            value = payload.get("value") or {}
            return base.Ignored(
                reason=f"template {value.get('message_template_name')}"
                f" is {value.get('event')} (applied to the template)"
            )
        if event.event_type not in ("message", "status"):
            return base.Ignored(reason=f"{event.event_type} notifications are not used")
        if payload.get("phone_number_id") != account.external_id:
            return base.Ignored(reason="for another phone number")
        if event.event_type == "status":
            return self._status(payload["status"])
        m = payload["message"]
        if m["type"] in IGNORED_TYPES:
            return base.Ignored(reason=f"{m['type']} messages are not stored")
        content_type, body, attachments, metadata = MESSAGE_TYPES.get(m["type"], _unsupported)(m)
        if context := m.get("context"):
            metadata["reply_to"] = context.get("id")
        contact = payload.get("contact") or {}
        return base.InboundMessage(
            provider_message_id=m["id"],
            sender=base.Sender(
                external_id=m["from"],
                name=(contact.get("profile") or {}).get("name"),
                phone=f"+{m['from']}",
            ),
            content_type=content_type,
            body=body,
            attachments=attachments,
            metadata=metadata,
            occurred_at=_time(m["timestamp"]),
        )

    def _status(self, status: dict[str, Any]) -> base.Parsed:
        if status["status"] not in STATUSES:
            return base.Ignored(reason=f"status {status['status']} is not tracked")
        errors = status.get("errors") or []
        return base.StatusUpdate(
            provider_message_id=status["id"],
            status=status["status"],
            occurred_at=_time(status["timestamp"]),
            error=errors[0] if errors else None,
        )

    async def send(
        self, client: ProviderClient, account: base.Account, message: base.OutboundMessage
    ) -> base.SendResult:
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to,
        }
        if template := message.metadata.get("template"):
            payload |= {"type": "template", "template": template}
        elif interactive := message.metadata.get("interactive"):  # a bot's buttons or list
            payload |= {"type": "interactive", "interactive": interactive}
        elif message.media_url and message.media_type:
            media: dict[str, Any] = {"link": message.media_url}
            if message.text and message.media_type != "audio":
                media["caption"] = message.text
            payload |= {"type": message.media_type, message.media_type: media}
        else:
            payload |= {"type": "text", "text": {"preview_url": False, "body": message.text}}
        response = await client.call(
            "POST",
            f"{MetaSettings.current().graph_url}/{account.external_id}/messages",
            errors=GRAPH_ERRORS,
            json=payload,
            headers={"Authorization": f"Bearer {account.secret('access_token')}"},
            at_most_once=True,
        )
        # {"messaging_product": "whatsapp", "contacts": [...], "messages": [{"id": "wamid…"}]}
        wamid, body = accepted_id(response, "messages", 0, "id")
        return base.SendResult(provider_message_id=wamid, response=body)


# The webhook fields handled, each by its own method; any other field is stored and
# ignored (not lost).
CHANGE_HANDLERS: dict[str, Callable[[WhatsApp, WaChange], list[base.RawEvent]]] = {
    "messages": WhatsApp._messages,
    TEMPLATE_STATUS: WhatsApp._template_status,
}
