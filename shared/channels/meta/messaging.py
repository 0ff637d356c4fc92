"""What Messenger and Instagram share: the `entry[].messaging[]` webhook, the Send API,
the profile API and Meta's messaging window.

Both deliver `{"object", "entry": [{"id", "time", "messaging": [event, …]}]}`, where
an event has a `sender`, a `recipient`, a `timestamp` and one kind of content
(`message`, `delivery`, `read`, `postback`, `reaction` …). Each event is stored on
its own and parsed through one handler per kind (`meta_events.HANDLERS`); the kinds
the inbox has no use for are acknowledged. The channels differ in their Graph host,
their webhook `object`, what they can send and how an account is connected.
"""

from __future__ import annotations

import hashlib
import json
import logging
from abc import abstractmethod
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import ValidationError

from shared.channels import base
from shared.channels.answers import ProviderError, json_body, unexpected
from shared.channels.http import ProviderClient
from shared.channels.meta.events import HANDLERS, Entry, Event, Webhook
from shared.channels.meta.graph import GRAPH_ERRORS, MetaChannel
from shared.errors import BadRequest, Unprocessable

log = logging.getLogger("connectgain.channels.meta")

STANDARD_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)  # Meta's HUMAN_AGENT tag: a person answering late
ENVELOPE = frozenset({"sender", "recipient", "timestamp"})
# Kinds Meta may deliver that the inbox does not use: acknowledged without a warning.
NOT_USED = frozenset(
    {
        "referral", "optin", "account_linking", "pass_thread_control", "take_thread_control",
        "request_thread_control", "app_roles", "policy_enforcement", "messaging_feedback",
        "comments", "live_comments", "mentions", "story_insights",
    }
)  # fmt: skip
SEND_TYPES = {"image": "image", "audio": "audio", "video": "video", "document": "file"}


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:40]


def event_kind(item: dict[str, Any]) -> str:
    """The kind of an event: the inbox's kinds first (a message may carry a referral
    beside it), else whatever else it carries."""
    known = next((kind for kind in HANDLERS if kind in item), None)
    return known or next((key for key in item if key not in ENVELOPE), "empty")


def event_id(kind: str, item: dict[str, Any]) -> str:
    """The dedupe key: the message id where there is one, else the event's own digest
    (Meta redelivers an event unchanged)."""
    body = item.get(kind)
    if not isinstance(body, dict):
        return f"{kind}:{digest(item)}"
    mid = body.get("mid")
    if kind == "message" and mid:
        # A deletion (Instagram) carries the id of the message it deletes.
        return f"message_deleted:{mid}" if body.get("is_deleted") else f"message:{mid}"
    if kind == "message_edit" and mid:
        return f"message_edit:{mid}:{body.get('num_edit')}"
    return f"{kind}:{digest(item)}"


class MetaMessagingChannel(MetaChannel):
    """A Messenger-style channel; the account's external_id is the Page / Instagram
    account id that webhooks name in `entry.id` and the Send API posts from."""

    webhook_object: ClassVar[str]  # "page" | "instagram"
    token_secret: ClassVar[str]  # which secret the Graph API is called with
    profile_fields: ClassVar[str]
    media_types: ClassVar[frozenset[str]]
    max_text: ClassVar[int]

    @abstractmethod
    def api_base(self) -> str:
        """The Graph host and version this channel's API lives at."""

    @abstractmethod
    def profile(self, external_id: str, body: dict[str, Any]) -> base.Sender:
        """A contact's name and avatar from the profile API's answer."""

    async def call(
        self, client: ProviderClient, token: str, method: str, path: str, **kwargs: Any
    ) -> dict[str, Any]:
        response = await client.call(
            method,
            f"{self.api_base()}/{path}",
            errors=GRAPH_ERRORS,
            headers={"Authorization": f"Bearer {token}"},
            **kwargs,
        )
        body = json_body(response)
        if not isinstance(body, dict):
            # a success we cannot read: Meta may have acted on it
            raise unexpected(response, "a JSON object")
        return body

    # ---- inbound ---------------------------------------------------------------------------

    def events(self, request: base.WebhookRequest, account: base.Account) -> list[base.RawEvent]:
        try:
            body = Webhook.model_validate(request.json())
        except ValidationError as exc:
            raise BadRequest(
                f"Not a {self.name} webhook body", details=exc.errors(include_url=False)
            ) from exc
        if body.object != self.webhook_object:
            raise BadRequest(f"Not a {self.name} webhook body: object is {body.object!r}")
        events: list[base.RawEvent] = []
        # Each entry is checked on its own: a malformed one is kept as a failed event of
        # its own, and the others land.
        for raw_entry in body.entry:
            try:
                entry = Entry.model_validate(raw_entry)
            except ValidationError as exc:
                error = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
                )
                events.append(base.malformed(raw_entry, error, part="entry"))
                continue
            events.extend(self._entry_events(entry))
        return events

    def _entry_events(self, entry: Entry) -> list[base.RawEvent]:
        events: list[base.RawEvent] = []
        # standby: events of conversations another app (a bot) currently owns
        for standby, items in ((False, entry.messaging), (True, entry.standby)):
            for item in items:
                kind = event_kind(item)
                payload = {"entry_id": entry.id, "standby": standby, "event": item}
                events.append(
                    base.RawEvent(
                        provider_event_id=event_id(kind, item), event_type=kind, payload=payload
                    )
                )
        for change in entry.changes:  # Instagram comments, mentions …
            field = str(change.get("field") or "change")
            events.append(
                base.RawEvent(
                    provider_event_id=f"{field}:{digest(change)}",
                    event_type=field,
                    payload={"entry_id": entry.id, "change": change},
                )
            )
        return events

    def parse(self, event: base.RawEvent, account: base.Account) -> base.Parsed:
        if event.payload.get("entry_id") != account.external_id:
            return base.Ignored(reason=f"for another {self.name} account")
        handler = HANDLERS.get(event.event_type) if "event" in event.payload else None
        if handler is None:
            known = event.event_type in NOT_USED
            log.log(
                logging.INFO if known else logging.WARNING,
                "%s: %s %s event acknowledged",
                self.name,
                "unused" if known else "unknown",
                event.event_type,
            )
            return base.Ignored(reason=f"{event.event_type} events are not used")
        messaging = Event.model_validate(event.payload["event"])
        if messaging.sender.id is None or messaging.recipient.id is None:
            return base.Ignored(reason="not a conversation with a known person (user_ref)")
        return handler(messaging)

    # ---- outbound --------------------------------------------------------------------------

    def window_options(self, last_inbound_at: datetime | None, now: datetime) -> dict[str, Any]:
        waited = None if last_inbound_at is None else now - last_inbound_at
        if waited is not None and waited <= STANDARD_WINDOW:
            return {"messaging_type": "RESPONSE"}
        if waited is not None and waited <= HUMAN_AGENT_WINDOW:
            return {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
        raise Unprocessable(
            "The contact has not written for more than 7 days: Meta allows replies for 24"
            " hours, and an agent's reply (human agent tag) for 7 days. The contact has to"
            " write first.",
            code="outside_window",
        )

    def check_outbound(self, *, text: str | None, media_type: str | None) -> None:
        if text and media_type:
            raise Unprocessable(
                f"{self.name} cannot caption an attachment: send the text and the"
                f" {media_type} as two messages",
                code="unsupported_message",
            )
        if media_type and media_type not in self.media_types:
            raise Unprocessable(
                f"{self.name} cannot send {media_type} attachments",
                code="unsupported_message",
                details={"media_types": sorted(self.media_types)},
            )
        if text and len(text) > self.max_text:
            raise Unprocessable(
                f"{self.name} messages are at most {self.max_text} characters",
                code="unsupported_message",
            )

    async def send(
        self, client: ProviderClient, account: base.Account, message: base.OutboundMessage
    ) -> base.SendResult:
        if message.media_url and message.media_type:
            kind = SEND_TYPES[message.media_type]
            body: dict[str, Any] = {
                "attachment": {"type": kind, "payload": {"url": message.media_url}}
            }
        else:
            body = {"text": message.text}
        answer = await self.call(
            client,
            account.secret(self.token_secret),
            "POST",
            f"{account.external_id}/messages",
            json={
                "recipient": {"id": message.to},
                "messaging_type": "RESPONSE",
                **message.metadata,  # the window's messaging_type and tag
                "message": body,
            },
            at_most_once=True,
        )
        message_id = answer.get("message_id")  # {"recipient_id": "…", "message_id": "m_…"}
        if not isinstance(message_id, str) or not message_id:
            raise ProviderError(
                "The Send API answered without a message id", outcome="unknown", body=answer
            )
        return base.SendResult(provider_message_id=message_id, response=answer)

    async def fetch_profile(
        self, client: ProviderClient, account: base.Account, external_id: str
    ) -> base.Sender | None:
        body = await self.call(
            client,
            account.secret(self.token_secret),
            "GET",
            external_id,
            params={"fields": self.profile_fields},
        )
        return self.profile(external_id, body)
