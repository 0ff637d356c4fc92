"""Messenger: accounts and signed deliveries for the contract tests."""

from __future__ import annotations

from typing import ClassVar

from tests.channels.kit import Account, Delivery, now_ms
from tests.channels.meta.kit import GRAPH, MetaMessagingKit


class MessengerKit(MetaMessagingKit):
    channel = "messenger"
    # The account (external id, secrets) the fixtures are addressed to.
    fixture_account: tuple[str, dict[str, str]] = ("104938501726344", {})
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


KIT = MessengerKit()
