"""E-mail (Mailgun): accounts and signed deliveries for the contract tests."""

from __future__ import annotations

import copy
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode
from uuid import UUID

from shared.channels.email import mailgun_webhooks
from shared.channels.email.mailgun import MailgunSettings
from shared.channels.email.parse import ACCOUNT_VARIABLE
from shared.db import Connection
from tests.channels.kit import Account, Delivery, NoEchoes, insert_account
from tests.fixtures import load


def mail_fields(
    base: dict[str, str], *, headers: dict[str, str] | None = None, **fields: str
) -> dict[str, str]:
    """A route forward's fields with MIME headers set as Mailgun posts them: in the
    message-headers list and as fields of their own."""
    fields = {**base, **fields}
    pairs = json.loads(fields["message-headers"])
    for name, value in (headers or {}).items():
        pair = next((p for p in pairs if p[0].lower() == name.lower()), None)
        if pair is None:
            pairs.insert(-1, [name, value])
        else:
            pair[1] = value
        fields[name] = value
    fields["message-headers"] = json.dumps(pairs)
    return fields


# The Mailgun event (its fixture) that reports each status.
MAILGUN_STATUS_EVENTS = {
    "sent": "event_accepted",
    "delivered": "event_delivered",
    "read": "event_opened",
    "failed": "event_failed",
}


class EmailKit(NoEchoes):
    """Mailgun signs a one-time token in the body: form fields for a route's forward, a
    "signature" object for an event webhook. Every delivery is signed as it is built."""

    channel = "email"
    # The account (external id, secrets) the fixtures are addressed to.
    fixture_account: tuple[str, dict[str, str]] = ("support@mg.northwind.example", {})
    statuses: tuple[str, ...] = ("sent", "delivered", "read", "failed")
    watermarks = False
    one_time_tokens = True
    failure_code: object = 550
    address = "support@mg.northwind.example"
    signing_key = "8b3f1a6c2d9e4f7a0b5c8d1e2f3a4b5c-2b3c4d5e-6f7a8b9c"
    api_key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0-2b3c4d5e-6f7a8b9c"

    def refusals(self) -> list[tuple[str, int, Any]]:
        return [
            (base, 404, load("email", "error_domain_not_found"))
            for base in (MailgunSettings.current().api_url, MailgunSettings.current().eu_api_url)
        ]

    async def create_account(self, db: Connection, org: UUID) -> Account:
        secrets = {"api_key": self.api_key, "webhook_signing_key": self.signing_key}
        settings = {
            "domain": "mg.northwind.example",
            "region": "us",
            "from_name": "Northwind Support",
            "track_opens": True,
        }
        return await insert_account(db, org, "email", self.address, secrets, settings)

    def signature(self, signing_key: str, *, age: float = 0) -> dict[str, str]:
        timestamp = str(int(time.time() - age))
        token = secrets.token_hex(25)  # 50 characters, like Mailgun's
        signature = mailgun_webhooks.sign(signing_key=signing_key, timestamp=timestamp, token=token)
        return {"timestamp": timestamp, "token": token, "signature": signature}

    def form(self, account: Account, fields: dict[str, str], *, age: float = 0) -> Delivery:
        signed = {**fields, **self.signature(account.secrets["webhook_signing_key"], age=age)}
        return Delivery(
            body=urlencode(signed).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def event(self, account: Account, event_data: dict[str, Any], *, age: float = 0) -> Delivery:
        signature = self.signature(account.secrets["webhook_signing_key"], age=age)
        return self._json({"signature": signature, "event-data": event_data})

    def _json(self, payload: dict[str, Any]) -> Delivery:
        return Delivery(json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def text_message(
        self, account: Account, *, sender: str, message_id: str, text: str
    ) -> Delivery:
        # A reply in one thread the customer began elsewhere, as chat messages are
        # one conversation: its root is unknown to the inbox and keys the thread.
        address = self.identity(sender)
        root = f"<thread.{sender}@mail.example.net>"
        fields = mail_fields(
            load("email", "inbound_message"),
            headers={
                "From": f"Customer {sender} <{address}>",
                "Message-Id": f"<{message_id}.{sender}@mail.example.net>",
                "In-Reply-To": root,
                "References": root,
                "Subject": "Re: Our order",
            },
            **{
                "from": f"Customer {sender} <{address}>",
                "sender": address,
                "subject": "Re: Our order",
                "body-plain": text,
                "stripped-text": text,
                "body-html": f"<div>{text}</div>",
                "stripped-html": f"<div>{text}</div>",
            },
        )
        return self.form(account, fields)

    def status(
        self, account: Account, *, provider_message_id: str, status: str, recipient: str
    ) -> Delivery:
        data = copy.deepcopy(load("email", MAILGUN_STATUS_EVENTS[status])["event-data"])
        data["id"] = f"{status}.{provider_message_id}"
        data["message"]["headers"]["message-id"] = provider_message_id
        data["user-variables"] = {ACCOUNT_VARIABLE: str(account.id)}
        return self.event(account, data)

    def _signed_anew(self, delivery: Delivery, signature: dict[str, str] | None) -> Delivery:
        if delivery.headers.get("Content-Type") == "application/json":
            payload = json.loads(delivery.body)
            payload.pop("signature")
            return self._json(payload if signature is None else {**payload, "signature": signature})
        fields = {
            k: v
            for k, v in parse_qsl(delivery.body.decode(), keep_blank_values=True)
            if k not in ("timestamp", "token", "signature")
        }
        return Delivery(urlencode({**fields, **(signature or {})}).encode(), delivery.headers)

    def redelivered(self, account: Account, delivery: Delivery) -> Delivery:
        return self._signed_anew(delivery, self.signature(account.secrets["webhook_signing_key"]))

    def forged(self, delivery: Delivery) -> Delivery:
        return self._signed_anew(delivery, self.signature("not-the-signing-key"))

    def unsigned(self, delivery: Delivery) -> Delivery:
        return self._signed_anew(delivery, None)

    def malformed(self, account: Account) -> list[Delivery]:
        key = account.secrets["webhook_signing_key"]
        mail = load("email", "inbound_message")
        return [
            self._json({"signature": self.signature(key), "unexpected": True}),
            self.event(account, {"unexpected": True}),
            self.form(account, {"subject": "neither headers nor a sender"}),
            self.form(account, {**mail, "from": "undisclosed-recipients:;", "sender": ""}),
        ]

    def unverifiable(self) -> list[Delivery]:
        """Bodies whose signature cannot even be found: Mailgun signs inside the body."""
        return [
            Delivery(b"{not json", {"Content-Type": "application/json"}),
            Delivery(  # a part without a name
                b"--x\r\nContent-Type: text/plain\r\n\r\nhello\r\n--x--\r\n",
                {"Content-Type": "multipart/form-data; boundary=x"},
            ),
        ]

    def identity(self, sender: str) -> str:
        return f"customer.{sender}@mail.example.net"


KIT = EmailKit()
