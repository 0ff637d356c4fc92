"""Per channel, how to make a connected account and signed provider deliveries.

The contract tests are written once against this interface and run for every
channel; a channel's kit builds its deliveries from its fixtures (the
provider's documented payloads), changing only ids and text.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import time
import zlib
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from urllib.parse import parse_qsl, urlencode
from uuid import UUID

import httpx
import respx

from shared.channels.email import mailgun_webhooks
from shared.channels.email.channel import ACCOUNT_VARIABLE
from shared.channels.instagram.channel import InstagramSettings
from shared.channels.meta.graph import MetaSettings, sign
from shared.channels.sms.channel import signature as twilio_signature
from shared.db import Connection
from tests.fixtures import load

PUBLIC_BASE_URL = "https://connectgain.example"  # settings.public_base_url in tests

# The provider hosts as the tests' settings have them (the defaults).
GRAPH = MetaSettings.current().graph_url
INSTAGRAM_GRAPH = InstagramSettings.current().graph_url


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


def post(
    client: httpx.AsyncClient, kit: Kit, account_id: object, delivery: Delivery
) -> Awaitable[httpx.Response]:
    """A delivery to the channel's webhook for the account, as the provider makes it."""
    return client.post(
        f"/functions/v1/{kit.channel}-webhook/{account_id}",
        content=delivery.body,
        headers=delivery.headers,
        params=delivery.query,
    )


async def counts(db: Connection) -> dict[str, int]:
    tables = ("inbound_events", "contacts", "contact_identities", "conversations", "messages")
    row = await db.fetchrow(
        "select " + ", ".join(f"(select count(*) from {t}) as {t}" for t in tables)
    )
    assert row is not None
    return dict(row)


class Kit(Protocol):
    channel: str
    # The delivery statuses the provider reports, in the order they happen.
    statuses: tuple[str, ...]
    # Whether a status covers every earlier message to the contact (Meta's watermarks)
    # rather than the one message it names.
    watermarks: bool
    # Whether the provider reports what the business sent from elsewhere (echoes).
    echoes: bool
    # The name a new contact gets from the provider's profile API (None: no such API).
    profile_name: str | None
    # Signs a one-time token (verify() returns it): an exact replay is refused, and a
    # provider's redelivery comes signed anew.
    one_time_tokens: bool
    failure_code: object  # the error code of the kit's failed status, as stored

    async def create_account(self, db: Connection, org: UUID) -> Account: ...
    def mock_provider(self, router: respx.MockRouter) -> respx.Route | None:
        """Mock what the inbox calls on its own (a profile API); that route, if any."""

    def text_message(
        self, account: Account, *, sender: str, message_id: str, text: str
    ) -> Delivery: ...
    def status(
        self, account: Account, *, provider_message_id: str, status: str, recipient: str
    ) -> Delivery: ...
    def echo(self, account: Account, *, recipient: str, message_id: str, text: str) -> Delivery: ...
    def mock_send(self, router: respx.MockRouter) -> respx.Route:
        """Mock the send endpoint to answer with provider message id SENT_ID."""

    def redelivered(self, account: Account, delivery: Delivery) -> Delivery: ...
    def forged(self, delivery: Delivery) -> Delivery: ...
    def unsigned(self, delivery: Delivery) -> Delivery: ...
    def malformed(self, account: Account) -> list[Delivery]:
        """Signed deliveries that are not what the provider sends."""

    def identity(self, sender: str) -> str: ...


SENT_ID = "sent-by-us-1"  # the provider id mock_send answers with


def now_ms() -> int:
    return int(time.time() * 1000)


class BodySigned:
    """Kits whose signature covers the raw body: a redelivery is the same request, and
    a body that is not the provider's can still be signed."""

    one_time_tokens = False

    def signed_raw(self, account: Account, body: bytes) -> Delivery:
        raise NotImplementedError

    def redelivered(self, account: Account, delivery: Delivery) -> Delivery:
        return delivery

    def malformed(self, account: Account) -> list[Delivery]:
        return [self.signed_raw(account, body) for body in (b"{not json", b'{"unexpected": true}')]


class MetaSigned(BodySigned):
    """Meta's webhooks: signed with the app secret in X-Hub-Signature-256."""

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


class NoEchoes:
    echoes = False
    profile_name: str | None = None

    def echo(self, account: Account, *, recipient: str, message_id: str, text: str) -> Delivery:
        raise NotImplementedError(f"{type(self).__name__} has no echoes")

    def mock_send(self, router: respx.MockRouter) -> respx.Route:
        raise NotImplementedError(f"{type(self).__name__} has no echoes to match sends with")

    def mock_provider(self, router: respx.MockRouter) -> respx.Route | None:
        return None


class WhatsAppKit(MetaSigned, NoEchoes):
    channel = "whatsapp"
    statuses: tuple[str, ...] = ("sent", "delivered", "read", "failed")
    watermarks = False
    failure_code: object = 131047
    phone_number_id = "106540352242922"

    async def create_account(self, db: Connection, org: UUID) -> Account:
        secrets = {
            "access_token": "EAAG-test",
            "app_secret": "wa-app-secret",
            "verify_token": "verify-me-123",
        }
        return await insert_account(db, org, "whatsapp", self.phone_number_id, secrets)

    def text_message(
        self, account: Account, *, sender: str, message_id: str, text: str
    ) -> Delivery:
        payload = copy.deepcopy(load("whatsapp", "text_message"))
        value = payload["entry"][0]["changes"][0]["value"]
        value["contacts"][0]["wa_id"] = sender
        value["messages"][0] |= {"from": sender, "id": message_id, "text": {"body": text}}
        return self._signed(account, payload)

    def status(
        self, account: Account, *, provider_message_id: str, status: str, recipient: str
    ) -> Delivery:
        payload = copy.deepcopy(load("whatsapp", f"status_{status}"))
        state = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
        state |= {"id": provider_message_id, "recipient_id": recipient}
        return self._signed(account, payload)


class TelegramKit(BodySigned, NoEchoes):
    channel = "telegram"
    statuses: tuple[str, ...] = ()
    watermarks = False
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

    def status(
        self, account: Account, *, provider_message_id: str, status: str, recipient: str
    ) -> Delivery:
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


class MetaMessagingKit(MetaSigned):
    """Messenger and Instagram: one `entry[].messaging[]` event per delivery, built from
    the channel's fixtures; statuses are watermarks, echoes report what the business sent."""

    channel: str
    external_id: str
    secrets: ClassVar[dict[str, str]]
    api: str  # the Graph host and version the channel calls
    watermarks = True
    echoes = True
    failure_code: object = None  # Meta reports no failed status

    async def create_account(self, db: Connection, org: UUID) -> Account:
        return await insert_account(db, org, self.channel, self.external_id, dict(self.secrets))

    def mock_provider(self, router: respx.MockRouter) -> respx.Route | None:
        host = httpx.URL(self.api)
        path = rf"^{re.escape(host.path)}/\d+$"  # GET /{user id}: the profile API
        return router.get(host=host.host, path__regex=path, name="profile").respond(
            200, json=load(self.channel, "profile")
        )

    def mock_send(self, router: respx.MockRouter) -> respx.Route:
        answer = {**load(self.channel, "send_response"), "message_id": SENT_ID}
        return router.post(f"{self.api}/{self.external_id}/messages").respond(200, json=answer)

    def _event(self, account: Account, fixture: str, **fields: Any) -> Delivery:
        payload = copy.deepcopy(load(self.channel, fixture))
        event = payload["entry"][0]["messaging"][0]
        for name, value in fields.items():
            if isinstance(value, dict) and isinstance(event.get(name), dict):
                event[name] |= value
            else:
                event[name] = value
        return self._signed(account, payload)

    def text_message(
        self, account: Account, *, sender: str, message_id: str, text: str
    ) -> Delivery:
        return self._event(
            account,
            "text_message",
            sender={"id": sender},
            message={"mid": f"m_{message_id}", "text": text},
        )

    def echo(self, account: Account, *, recipient: str, message_id: str, text: str) -> Delivery:
        return self._event(
            account,
            "echo_message",
            recipient={"id": recipient},
            timestamp=now_ms(),
            message={"mid": message_id, "text": text},
        )


class MessengerKit(MetaMessagingKit):
    channel = "messenger"
    profile_name: str | None = "Ana Ferreira"
    statuses: tuple[str, ...] = ("delivered", "read")
    external_id = "104938501726344"
    secrets: ClassVar[dict[str, str]] = {
        "page_access_token": "EAAP-page-token",
        "app_secret": "messenger-app-secret",
        "verify_token": "verify-page-123",
    }
    api = GRAPH

    def status(
        self, account: Account, *, provider_message_id: str, status: str, recipient: str
    ) -> Delivery:
        if status == "delivered":
            delivery = {"mids": [provider_message_id], "watermark": now_ms()}
            return self._event(account, "delivery", sender={"id": recipient}, delivery=delivery)
        return self._event(
            account,
            "read",
            sender={"id": recipient},
            timestamp=now_ms(),
            read={"watermark": now_ms()},
        )


class InstagramKit(MetaMessagingKit):
    channel = "instagram"
    profile_name: str | None = "Joana Silva"
    statuses: tuple[str, ...] = ("read",)  # messaging_seen; Instagram reports no deliveries
    external_id = "17841405822304914"
    secrets: ClassVar[dict[str, str]] = {
        "access_token": "IGAAT-user-token",
        "app_secret": "instagram-app-secret",
        "verify_token": "verify-insta-123",
    }
    api = INSTAGRAM_GRAPH

    def status(
        self, account: Account, *, provider_message_id: str, status: str, recipient: str
    ) -> Delivery:
        return self._event(
            account,
            "read",
            sender={"id": recipient},
            timestamp=now_ms(),
            read={"mid": provider_message_id},
        )


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
    statuses: tuple[str, ...] = ("sent", "delivered", "read", "failed")
    watermarks = False
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


class SmsKit(BodySigned, NoEchoes):
    """Twilio posts forms and signs the public URL plus the sorted parameters."""

    channel = "sms"
    statuses: tuple[str, ...] = ("sent", "delivered", "read", "failed")
    watermarks = False
    failure_code: object = "30008"
    account_sid = "AC3f4a2b9c8d7e6f5a4b3c2d1e0f9a8b7c"

    async def create_account(self, db: Connection, org: UUID) -> Account:
        secrets = {"account_sid": self.account_sid, "auth_token": "twilio-auth-token-0123456789"}
        return await insert_account(db, org, "sms", "+14155550100", secrets)

    def url(self, account: Account) -> str:
        return f"{PUBLIC_BASE_URL}/functions/v1/sms-webhook/{account.id}"

    def signed_form(self, account: Account, params: list[tuple[str, str]]) -> Delivery:
        return Delivery(
            body=urlencode(params).encode(),
            headers={
                "X-Twilio-Signature": twilio_signature(
                    self.url(account), params, account.secrets["auth_token"]
                ),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )

    def signed_raw(self, account: Account, body: bytes) -> Delivery:
        params = parse_qsl(body.decode(), keep_blank_values=True)
        return Delivery(body, self.signed_form(account, params).headers)

    def text_message(
        self, account: Account, *, sender: str, message_id: str, text: str
    ) -> Delivery:
        form = load("sms", "text_message") | {
            "From": f"+{sender}",
            "Body": text,
            "MessageSid": f"SM{message_id}",
            "SmsSid": f"SM{message_id}",
            "SmsMessageSid": f"SM{message_id}",
        }
        return self.signed_form(account, list(form.items()))

    def status(
        self, account: Account, *, provider_message_id: str, status: str, recipient: str
    ) -> Delivery:
        form = load("sms", f"status_{status}") | {
            "MessageSid": provider_message_id,
            "SmsSid": provider_message_id,
            "To": recipient if recipient.startswith("+") else f"+{recipient}",
        }
        return self.signed_form(account, list(form.items()))

    def forged(self, delivery: Delivery) -> Delivery:
        return Delivery(
            delivery.body, {**delivery.headers, "X-Twilio-Signature": "bm90IHRoZSBzaWduYXR1cmU="}
        )

    def unsigned(self, delivery: Delivery) -> Delivery:
        return Delivery(
            delivery.body, {k: v for k, v in delivery.headers.items() if k != "X-Twilio-Signature"}
        )

    def identity(self, sender: str) -> str:
        return f"+{sender}"


KITS: dict[str, Kit] = {
    kit.channel: kit
    for kit in (WhatsAppKit(), TelegramKit(), MessengerKit(), InstagramKit(), EmailKit(), SmsKit())
}
