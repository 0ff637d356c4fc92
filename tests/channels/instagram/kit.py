"""Instagram: accounts and signed deliveries for the contract tests."""

from __future__ import annotations

from typing import ClassVar

from shared.channels.instagram.channel import InstagramSettings
from tests.channels.kit import Account, Delivery, now_ms
from tests.channels.meta.kit import MetaMessagingKit

INSTAGRAM_GRAPH = InstagramSettings.current().graph_url


class InstagramKit(MetaMessagingKit):
    channel = "instagram"
    # The account (external id, secrets) the fixtures are addressed to.
    fixture_account: tuple[str, dict[str, str]] = ("17841405822304914", {})
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


KIT = InstagramKit()
