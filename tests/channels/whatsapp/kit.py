"""WhatsApp: accounts and signed deliveries for the contract tests."""

from __future__ import annotations

import copy
from uuid import UUID

from shared.db import Connection
from tests.channels.kit import Account, Delivery, NoEchoes, insert_account
from tests.channels.meta.kit import MetaSigned
from tests.fixtures import load


class WhatsAppKit(MetaSigned, NoEchoes):
    channel = "whatsapp"
    # The account (external id, secrets) the fixtures are addressed to.
    fixture_account: tuple[str, dict[str, str]] = ("106540352242922", {})
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


KIT = WhatsAppKit()
