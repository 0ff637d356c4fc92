"""Per channel, how to make a connected account and signed provider deliveries.

The contract tests are written once against this interface and run for every
channel; a channel's kit builds its deliveries from its fixtures (the
provider's documented payloads), changing only ids and text.
"""

from __future__ import annotations

import copy
import json
import re
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from uuid import UUID

import httpx
import respx

from shared.channels.meta import sign
from shared.db import Connection
from shared.settings import Settings
from tests.fixtures import load

# The provider hosts as the tests' settings have them (the defaults).
GRAPH = Settings.model_fields["meta_graph_url"].default
INSTAGRAM_GRAPH = Settings.model_fields["instagram_graph_url"].default


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
    db: Connection, org: UUID, channel: str, external_id: str, secrets: dict[str, Any]
) -> Account:
    account_id: UUID = await db.fetchval(
        "insert into channel_accounts (organization_id, channel, name, external_id)"
        " values ($1, $2, $3, $4) returning id",
        org,
        channel,
        f"Test {channel}",
        external_id,
    )
    await db.execute(
        "insert into private.channel_credentials (channel_account_id, secrets) values ($1, $2)",
        account_id,
        secrets,
    )
    return Account(id=account_id, organization_id=org, secrets=secrets)


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

    def forged(self, delivery: Delivery) -> Delivery: ...
    def unsigned(self, delivery: Delivery) -> Delivery: ...
    def signed_raw(self, account: Account, body: bytes) -> Delivery: ...
    def identity(self, sender: str) -> str: ...


SENT_ID = "sent-by-us-1"  # the provider id mock_send answers with


def now_ms() -> int:
    return int(time.time() * 1000)


class MetaSigned:
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


class TelegramKit(NoEchoes):
    channel = "telegram"
    statuses: tuple[str, ...] = ()
    watermarks = False
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


KITS: dict[str, Kit] = {
    kit.channel: kit for kit in (WhatsAppKit(), TelegramKit(), MessengerKit(), InstagramKit())
}
