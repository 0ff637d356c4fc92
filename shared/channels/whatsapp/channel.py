"""WhatsApp Cloud API: webhooks (messages, statuses, template statuses) and sending
(text, media, templates) through the Graph API. The webhook body's models and the
content of each message type are in parse.py.

Account: external_id = phone_number_id; secrets access_token, app_secret, verify_token;
settings waba_id, display_phone_number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, Field, ValidationError

from shared.channels import base
from shared.channels.answers import accepted_id
from shared.channels.http import ProviderClient
from shared.channels.meta.graph import GRAPH_ERRORS, MetaChannel, MetaSettings, MetaSetup
from shared.channels.whatsapp.parse import (
    IGNORED_TYPES,
    MESSAGE_TYPES,
    STATUSES,
    TEMPLATE_STATUS,
    WaChange,
    WaContact,
    WaEntry,
    WaMessage,
    WaStatus,
    WaTemplateStatus,
    WaValue,
    each_item,
    from_timestamp,
    unsupported,
    validation_errors,
)
from shared.errors import BadRequest


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
                events.append(base.malformed(raw_entry, validation_errors(exc), part="entry"))
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
            return [base.malformed(change.value, validation_errors(exc), part="change")]
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
            return [base.malformed(change.value, validation_errors(exc), part="change")]
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
            *each_item(value.messages, WaMessage, message, part="message"),
            *each_item(value.statuses, WaStatus, status, part="status"),
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
        content_type, body, attachments, metadata = MESSAGE_TYPES.get(m["type"], unsupported)(m)
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
            occurred_at=from_timestamp(m["timestamp"]),
        )

    def _status(self, status: dict[str, Any]) -> base.Parsed:
        if status["status"] not in STATUSES:
            return base.Ignored(reason=f"status {status['status']} is not tracked")
        errors = status.get("errors") or []
        return base.StatusUpdate(
            provider_message_id=status["id"],
            status=status["status"],
            occurred_at=from_timestamp(status["timestamp"]),
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
