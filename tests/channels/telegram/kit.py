"""Telegram: accounts and signed deliveries for the contract tests."""

from __future__ import annotations

import copy
import json
import zlib
from typing import Any
from uuid import UUID

from shared.channels.telegram.channel import TelegramSettings
from shared.db import Connection
from tests.channels.kit import Account, BodySigned, Delivery, NoEchoes, insert_account
from tests.fixtures import load


class TelegramKit(BodySigned, NoEchoes):
    channel = "telegram"
    # The account (external id, secrets) the fixtures are addressed to.
    fixture_account: tuple[str, dict[str, str]] = ("7123456789", {})
    statuses: tuple[str, ...] = ()
    watermarks = False
    failure_code: object = None
    _update = 900000

    def refusals(self) -> list[tuple[str, int, Any]]:
        return [(TelegramSettings.current().api_url, 401, load("telegram", "unauthorized"))]

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


KIT = TelegramKit()
