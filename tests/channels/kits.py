"""Per channel, how to make a connected account and signed provider deliveries.

The contract tests are written once against this interface and run for every
channel; a channel's kit builds its deliveries from its fixtures (the
provider's documented payloads), changing only ids and text.
"""

from __future__ import annotations

import copy
import json
import zlib
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode
from uuid import UUID

from shared.channels.meta import sign
from shared.channels.sms import signature as twilio_signature
from shared.db import Connection
from tests.fixtures import load

PUBLIC_BASE_URL = "https://connectgain.example"  # settings.public_base_url in tests


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
    has_statuses: bool
    failed_error_code: Any  # the error code in the provider's "failed" status fixture

    async def create_account(self, db: Connection, org: UUID) -> Account: ...
    def text_message(
        self, account: Account, *, sender: str, message_id: str, text: str
    ) -> Delivery: ...
    def status(self, account: Account, *, provider_message_id: str, status: str) -> Delivery: ...
    def forged(self, delivery: Delivery) -> Delivery: ...
    def unsigned(self, delivery: Delivery) -> Delivery: ...
    def signed_raw(self, account: Account, body: bytes) -> Delivery: ...
    def identity(self, sender: str) -> str: ...


class WhatsAppKit:
    channel = "whatsapp"
    has_statuses = True
    failed_error_code = 131047
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


class TelegramKit:
    channel = "telegram"
    has_statuses = False
    failed_error_code = None
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


class SmsKit:
    """Twilio posts forms and signs the public URL plus the sorted parameters."""

    channel = "sms"
    has_statuses = True
    failed_error_code = "30008"
    account_sid = "AC3f4a2b9c8d7e6f5a4b3c2d1e0f9a8b7c"

    async def create_account(self, db: Connection, org: UUID) -> Account:
        secrets = {"account_sid": self.account_sid, "auth_token": "twilio-auth-token-0123456789"}
        return await insert_account(db, org, "sms", "+14155550100", secrets)

    def url(self, account: Account) -> str:
        return f"{PUBLIC_BASE_URL}/functions/v1/sms-webhook/{account.id}"

    def _signed(self, account: Account, params: list[tuple[str, str]]) -> Delivery:
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
        delivery = self._signed(account, parse_qsl(body.decode(), keep_blank_values=True))
        return Delivery(body, delivery.headers)

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
        return self._signed(account, list(form.items()))

    def status(self, account: Account, *, provider_message_id: str, status: str) -> Delivery:
        form = load("sms", f"status_{status}") | {
            "MessageSid": provider_message_id,
            "SmsSid": provider_message_id,
        }
        return self._signed(account, list(form.items()))

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


KITS: dict[str, Kit] = {kit.channel: kit for kit in (WhatsAppKit(), TelegramKit(), SmsKit())}
