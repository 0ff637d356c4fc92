"""E-mail through Mailgun: inbound mail from a route's forward(), delivery events from
the domain's webhooks, replies through the messages API.

Account: external_id = the inbox address (lower-case): customers write to it, replies
come from it. Settings domain, region, from_name, track_opens and what connect()
registered (route_id, webhook_url); secrets api_key, webhook_signing_key.

One URL takes both deliveries, told apart by their body: a route forward is a form
(multipart when the mail has attachments), an event webhook is JSON. Both are signed
alike (hex HMAC-SHA256 of timestamp + token under the webhook signing key); the token
is the delivery's one-time nonce, and a timestamp more than 5 minutes off is refused.

Threading: every e-mail is stored under its Message-ID without angle brackets — ours
too, as the id Mailgun answers a send with is the sent mail's Message-ID. A mail whose
In-Reply-To/References name a stored message joins that conversation
(app.ingest_message). Otherwise a new mail starts a conversation keyed by its own
Message-ID, so a new subject is a new conversation; a reply whose references are all
unknown (its thread began elsewhere) is keyed by its thread's root, the first
reference, so the later replies of that thread join it.

What each delivery means (messages, statuses) is in parse.py.
"""

from __future__ import annotations

import logging
import re
from email.utils import formataddr
from html import escape
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, EmailStr, Field, field_validator

from shared.channels import base
from shared.channels.answers import ProviderError
from shared.channels.email.mailgun import Mailgun
from shared.channels.email.mailgun_webhooks import (
    event_webhook,
    forward_fields,
    inbound_mail,
    message_ids,
    verify_signature,
)
from shared.channels.email.parse import ACCOUNT_VARIABLE, HANDLERS, IGNORED_EVENTS
from shared.channels.http import ProviderClient
from shared.errors import AppError

log = logging.getLogger("connectgain.channels.email")

# Mailgun takes mails of up to 25 MB; a forward posts them parsed, attachments included.
MAX_FORWARD_BYTES = 40 * 1024 * 1024
_REPLY_PREFIX = re.compile(r"^\s*re\s*(\[\d+\])?\s*:", re.IGNORECASE)


def reply_subject(subject: str | None) -> str:
    """The subject of a reply: one "Re: ", never doubled."""
    subject = (subject or "").strip()
    return subject if _REPLY_PREFIX.match(subject) else f"Re: {subject}".strip()


class EmailSetup(BaseModel):
    address: EmailStr  # the inbox: customers write to it, replies come from it
    domain: str = Field(
        max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]$"
    )
    region: Literal["us", "eu"] = "us"
    from_name: str | None = Field(default=None, min_length=1, max_length=120, pattern=r"^[^\r\n]+$")
    api_key: str = Field(min_length=8, max_length=200, pattern=r"^\S+$")
    webhook_signing_key: str = Field(min_length=8, max_length=200, pattern=r"^\S+$")
    track_opens: bool = True  # needs the HTML part every reply has; opened → read

    @field_validator("domain", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


def _html(text: str) -> str:
    """The HTML alternative: Mailgun tracks opens through it."""
    return "<br>\n".join(escape(line) for line in text.splitlines())


class Email(base.Channel):
    name: ClassVar[str] = "email"
    Setup: ClassVar[type[BaseModel]] = EmailSetup
    # Mailgun posts events as JSON and forwards mail as forms (multipart with files).
    body_types = ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")
    max_body_bytes = MAX_FORWARD_BYTES  # a forwarded mail carries its attachments

    def verify(self, request: base.WebhookRequest, account: base.Account) -> str:
        # The token is a one-time nonce: the pipeline refuses it when seen again.
        return verify_signature(request, signing_key=account.secret("webhook_signing_key"))

    def events(self, request: base.WebhookRequest, account: base.Account) -> list[base.RawEvent]:
        if request.form is not None:  # a route's forward: one mail
            fields = forward_fields(request.form)
            mail = inbound_mail(fields)
            return [
                base.RawEvent(
                    provider_event_id=f"message:{mail.message_id()}",
                    event_type="message",
                    payload={"fields": fields, "files": request.files},
                )
            ]
        body = request.json()  # an event webhook: one event
        data = event_webhook(body)
        return [
            base.RawEvent(
                provider_event_id=f"event:{data.id}",
                event_type=data.event,
                payload=body["event-data"],
            )
        ]

    def parse(self, event: base.RawEvent, account: base.Account) -> base.Parsed:
        handler = HANDLERS.get(event.event_type)
        if handler is not None:
            return handler(event.payload, account)
        if event.event_type not in IGNORED_EVENTS:
            log.warning("unknown Mailgun event %r acknowledged", event.event_type)
            return base.Ignored(reason=f"unknown Mailgun event {event.event_type!r}")
        return base.Ignored(reason=f"{event.event_type} events are not used")

    async def send(
        self, client: ProviderClient, account: base.Account, message: base.OutboundMessage
    ) -> base.SendResult:
        text = "\n\n".join(filter(None, [message.text, message.media_url]))  # media by link
        references = message.thread.references
        form = {
            "from": formataddr((account.settings.get("from_name") or "", account.external_id)),
            "to": message.to,
            "subject": (
                reply_subject(message.thread.subject)
                if references
                else message.thread.subject or "(no subject)"
            ),
            "text": text,
            "html": _html(text),
            f"v:{ACCOUNT_VARIABLE}": str(account.id),
            "o:tracking-opens": "yes" if account.settings.get("track_opens", True) else "no",
        }
        if references:  # so the customer's mail client threads the reply
            form["h:In-Reply-To"] = f"<{references[-1]}>"
            form["h:References"] = " ".join(f"<{r}>" for r in references)
        api = Mailgun(
            client, api_key=account.secret("api_key"), region=account.settings.get("region")
        )
        body = await api.call(
            "POST",
            f"/v3/{account.settings['domain']}/messages",
            data=form,
            at_most_once=True,
        )
        ident = body.get("id")  # {"id": "<…@domain>", "message": "Queued. Thank you."}
        sent = message_ids(ident) if isinstance(ident, str) else []
        if not sent:
            raise ProviderError(
                "Mailgun accepted the mail without an id", outcome="unknown", body=body
            )
        return base.SendResult(provider_message_id=sent[0], response=body)

    async def connect(
        self, client: ProviderClient, *, setup: Any, webhook_url: str
    ) -> base.Connected:
        assert isinstance(setup, EmailSetup)
        address = setup.address.lower()
        api = Mailgun(client, api_key=setup.api_key, region=setup.region)
        domain = await api.domain(setup.domain)  # a wrong key, region or domain stops here
        route_id: str | None = None
        try:
            route_id = await api.create_route(address=address, webhook_url=webhook_url)
            await api.subscribe(domain=setup.domain, url=webhook_url)
        except (ProviderError, AppError):
            await api.teardown(domain=setup.domain, url=webhook_url, route_id=route_id)
            raise
        return base.Connected(
            external_id=address,
            settings={
                "domain": setup.domain,
                "region": setup.region,
                "from_name": setup.from_name,
                "track_opens": setup.track_opens,
                "domain_state": domain.get("state"),
                "route_id": route_id,
                "webhook_url": webhook_url,
            },
            secrets={
                "api_key": setup.api_key,
                "webhook_signing_key": setup.webhook_signing_key,
            },
        )

    async def disconnect(self, client: ProviderClient, account: base.Account) -> None:
        api = Mailgun(
            client, api_key=account.secret("api_key"), region=account.settings.get("region")
        )
        await api.teardown(
            domain=account.settings["domain"],
            url=account.settings.get("webhook_url"),
            route_id=account.settings.get("route_id"),
        )
