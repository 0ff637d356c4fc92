"""What an e-mail delivery means to the inbox: a route's forward is an inbound mail, an
event webhook a status of a mail we sent, each turned into the inbox's shapes by one
handler per kind (`HANDLERS`). The deliveries themselves are parsed at the edge in
mailgun_webhooks.py.

Statuses: accepted → sent, delivered → delivered, opened → read, permanent failure →
failed with Mailgun's reason. A temporary failure is not final (Mailgun retries, then
reports a permanent one), so it is acknowledged, not applied. The domain's webhooks
report all of its mail: sends carry the account id as a Mailgun variable, and events
without it are someone else's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from shared.channels import base
from shared.channels.email.mailgun_webhooks import EventData, InboundMail, kind_of, message_ids

ACCOUNT_VARIABLE = "connectgain-account"  # v:connectgain-account on every send

Handler = Callable[[dict[str, Any], base.Account], base.Parsed]


def _inbound(payload: dict[str, Any], account: base.Account) -> base.Parsed:
    mail = InboundMail.model_validate(payload["fields"])  # validated at the edge
    name, address = mail.author()
    if address.lower() == account.external_id:
        return base.Ignored(reason="mail from the inbox's own address")
    own_id = mail.message_id()
    in_reply_to = message_ids(mail.header("In-Reply-To"))
    chain = [*message_ids(mail.header("References")), *in_reply_to]
    references = list(dict.fromkeys(r for r in chain if r != own_id))  # root first
    attachments = mail.attachment_refs(payload.get("files") or [])
    text = mail.stripped_text.strip() or mail.body_plain.strip()  # quoted history stripped
    body = "\n".join(text.splitlines()) or None  # "\n" line ends, like the other channels
    content_type: base.ContentType = (
        kind_of(attachments[0].mime_type) if attachments and not body else "text"
    )
    metadata = {
        "subject": mail.subject or None,
        "message_id": own_id,
        "reply_to": in_reply_to[0] if in_reply_to else None,
        "references": references or None,
        "to": mail.header("To"),
        "cc": mail.header("Cc"),
        "recipient": mail.recipient or None,
        "html": mail.body_html,
        "content_ids": mail.content_id_map or None,
        # An out-of-office or other automatic answer (RFC 3834), for rules to tell apart.
        "auto_submitted": auto if (auto := mail.header("Auto-Submitted")) != "no" else None,
    }
    return base.InboundMessage(
        provider_message_id=own_id,
        sender=base.Sender(external_id=address.lower(), name=name or None, email=address),
        content_type=content_type,
        body=body,
        attachments=attachments,
        metadata={k: v for k, v in metadata.items() if v is not None},
        occurred_at=mail.sent_at(),
        thread=base.Thread(
            key=references[0] if references else own_id,
            subject=mail.subject or None,
            references=references,
        ),
    )


def _ours(data: EventData, account: base.Account) -> bool:
    return str(data.user_variables.get(ACCOUNT_VARIABLE)) == str(account.id)


def _status(step: Literal["sent", "delivered", "read"]) -> Handler:
    def handle(payload: dict[str, Any], account: base.Account) -> base.Parsed:
        data = EventData.model_validate(payload)
        if not _ours(data, account):
            return base.Ignored(reason="mail not sent from this inbox")
        return base.StatusUpdate(
            provider_message_id=data.message_id(),
            status=step,
            occurred_at=data.occurred_at,
        )

    return handle


def _failed(payload: dict[str, Any], account: base.Account) -> base.Parsed:
    data = EventData.model_validate(payload)
    if not _ours(data, account):
        return base.Ignored(reason="mail not sent from this inbox")
    status = data.delivery_status
    reason = status.get("message") or status.get("description") or data.reason
    if data.severity == "temporary":
        return base.Ignored(reason=f"a temporary failure, Mailgun retries: {reason}")
    error = {
        "code": status.get("code"),
        "message": reason,
        "reason": data.reason,
        "severity": data.severity,
    }
    return base.StatusUpdate(
        provider_message_id=data.message_id(),
        status="failed",
        occurred_at=data.occurred_at,
        error={k: v for k, v in error.items() if v is not None},
    )


HANDLERS: dict[str, Handler] = {
    "message": _inbound,  # a route's forward
    "accepted": _status("sent"),
    "delivered": _status("delivered"),
    "opened": _status("read"),
    "failed": _failed,
}
IGNORED_EVENTS = frozenset({"clicked", "unsubscribed", "complained", "stored", "rejected"})
