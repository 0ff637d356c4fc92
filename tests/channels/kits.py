"""Per channel, how to make a connected account and signed provider deliveries.

The contract tests are written once against this interface and run for every
channel; a channel's kit builds its deliveries from its fixtures (the
provider's documented payloads), changing only ids and text.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode
from uuid import UUID

from shared.channels import mailgun_webhooks
from shared.channels.email import ACCOUNT_VARIABLE
from shared.channels.meta import sign
from shared.db import Connection
from tests.fixtures import load


@dataclass
class Delivery:
    """One HTTP request a provider would make to our webhook."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class Account:
    id: UUID
    organization_id: UUID
    secrets: dict[str, Any]


async def insert_account(
    db: Connection,
    org: UUID,
    channel: str,
    external_id: str,
    secrets: dict[str, Any],
    settings: dict[str, Any] | None = None,
) -> Account:
    account_id: UUID = await db.fetchval(
        "insert into channel_accounts (organization_id, channel, name, external_id, settings)"
        " values ($1, $2, $3, $4, $5) returning id",
        org,
        channel,
        f"Test {channel}",
        external_id,
        settings or {},
    )
    await db.execute(
        "insert into private.channel_credentials (channel_account_id, secrets) values ($1, $2)",
        account_id,
        secrets,
    )
    return Account(id=account_id, organization_id=org, secrets=secrets)


class Kit(Protocol):
    channel: str
    has_statuses: bool
    # Signs a one-time token (verify() returns it): an exact replay is refused, and a
    # provider's redelivery comes signed anew.
    one_time_tokens: bool
    failure_code: object  # the error code of the kit's failed status, as stored

    async def create_account(self, db: Connection, org: UUID) -> Account: ...
    def text_message(
        self, account: Account, *, sender: str, message_id: str, text: str
    ) -> Delivery: ...
    def status(self, account: Account, *, provider_message_id: str, status: str) -> Delivery: ...
    def redelivered(self, account: Account, delivery: Delivery) -> Delivery: ...
    def forged(self, delivery: Delivery) -> Delivery: ...
    def unsigned(self, delivery: Delivery) -> Delivery: ...
    def malformed(self, account: Account) -> list[Delivery]: ...
    def identity(self, sender: str) -> str: ...


class _BodySigned(ABC):
    """Kits whose signature covers the raw body: a redelivery is the same request, and
    a body that is not the provider's can still be signed."""

    one_time_tokens = False

    @abstractmethod
    def signed_raw(self, account: Account, body: bytes) -> Delivery: ...

    def redelivered(self, account: Account, delivery: Delivery) -> Delivery:
        return delivery

    def malformed(self, account: Account) -> list[Delivery]:
        return [self.signed_raw(account, body) for body in (b"{not json", b'{"unexpected": true}')]


class WhatsAppKit(_BodySigned):
    channel = "whatsapp"
    has_statuses = True
    failure_code: object = 131047
    phone_number_id = "106540352242922"

    async def create_account(self, db: Connection, org: UUID) -> Account:
        secrets = {
            "access_token": "EAAG-test",
            "app_secret": "wa-app-secret",
            "verify_token": "verify-me-123",
        }
        return await insert_account(db, org, "whatsapp", self.phone_number_id, secrets)

    def signed_raw(self, account: Account, body: bytes) -> Delivery:
        return Delivery(
            body=body,
            headers={
                "X-Hub-Signature-256": sign(body, account.secrets["app_secret"]),
                "Content-Type": "application/json",
            },
        )

    def _signed(self, account: Account, payload: Any) -> Delivery:
        return self.signed_raw(account, json.dumps(payload).encode())

    def text_message(
        self, account: Account, *, sender: str, message_id: str, text: str
    ) -> Delivery:
        payload = copy.deepcopy(load("whatsapp", "text_message"))
        value = payload["entry"][0]["changes"][0]["value"]
        value["contacts"][0]["wa_id"] = sender
        value["messages"][0] |= {"from": sender, "id": message_id, "text": {"body": text}}
        return self._signed(account, payload)

    def status(self, account: Account, *, provider_message_id: str, status: str) -> Delivery:
        payload = copy.deepcopy(load("whatsapp", f"status_{status}"))
        payload["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = provider_message_id
        return self._signed(account, payload)

    def forged(self, delivery: Delivery) -> Delivery:
        return Delivery(
            delivery.body,
            {**delivery.headers, "X-Hub-Signature-256": sign(delivery.body, "not-the-secret")},
        )

    def unsigned(self, delivery: Delivery) -> Delivery:
        return Delivery(
            delivery.body, {k: v for k, v in delivery.headers.items() if k != "X-Hub-Signature-256"}
        )

    def identity(self, sender: str) -> str:
        return sender


class TelegramKit(_BodySigned):
    channel = "telegram"
    has_statuses = False
    failure_code: object = None
    _update = 900000

    async def create_account(self, db: Connection, org: UUID) -> Account:
        secrets = {
            "bot_token": "7123456789:AAH-test-token-abcdefghijklmnop",
            "webhook_secret": "tg-secret-xyz",
        }
        return await insert_account(db, org, "telegram", "7123456789", secrets)

    def signed_raw(self, account: Account, body: bytes) -> Delivery:
        return Delivery(
            body=body,
            headers={
                "X-Telegram-Bot-Api-Secret-Token": account.secrets["webhook_secret"],
                "Content-Type": "application/json",
            },
        )

    def text_message(
        self, account: Account, *, sender: str, message_id: str, text: str
    ) -> Delivery:
        payload = copy.deepcopy(load("telegram", "text_message"))
        # Telegram numbers updates; a redelivery carries the same update_id.
        payload["update_id"] = zlib.crc32(message_id.encode())
        message = payload["message"]
        message |= {"message_id": int(message_id), "text": text}
        message["from"]["id"] = int(sender)
        message["chat"]["id"] = int(sender)
        return self.signed_raw(account, json.dumps(payload).encode())

    def status(self, account: Account, *, provider_message_id: str, status: str) -> Delivery:
        raise NotImplementedError("Telegram reports no delivery statuses")

    def forged(self, delivery: Delivery) -> Delivery:
        return Delivery(
            delivery.body, {**delivery.headers, "X-Telegram-Bot-Api-Secret-Token": "guess"}
        )

    def unsigned(self, delivery: Delivery) -> Delivery:
        return Delivery(
            delivery.body, {k: v for k, v in delivery.headers.items() if "Secret" not in k}
        )

    def identity(self, sender: str) -> str:
        return sender


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


class EmailKit:
    """Mailgun signs a one-time token in the body: form fields for a route's forward, a
    "signature" object for an event webhook. Every delivery is signed as it is built."""

    channel = "email"
    has_statuses = True
    one_time_tokens = True
    failure_code: object = 550
    address = "support@mg.northwind.example"
    signing_key = "8b3f1a6c2d9e4f7a0b5c8d1e2f3a4b5c-2b3c4d5e-6f7a8b9c"
    api_key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0-2b3c4d5e-6f7a8b9c"

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

    def status(self, account: Account, *, provider_message_id: str, status: str) -> Delivery:
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
            Delivery(b"{not json", {"Content-Type": "application/json"}),
            self._json({"signature": self.signature(key), "unexpected": True}),
            self.event(account, {"unexpected": True}),
            self.form(account, {"subject": "neither headers nor a sender"}),
            self.form(account, {**mail, "from": "undisclosed-recipients:;", "sender": ""}),
            Delivery(  # a part without a name
                b"--x\r\nContent-Type: text/plain\r\n\r\nhello\r\n--x--\r\n",
                {"Content-Type": "multipart/form-data; boundary=x"},
            ),
        ]

    def identity(self, sender: str) -> str:
        return f"customer.{sender}@mail.example.net"


KITS: dict[str, Kit] = {kit.channel: kit for kit in (WhatsAppKit(), TelegramKit(), EmailKit())}
