"""Facebook Messenger: a Page's conversations through the Messenger Platform.

Account: external_id = the Page id; secrets page_access_token, app_secret (signs the
webhooks), verify_token (the GET verification); settings page_name. Connecting checks
the token belongs to that Page and subscribes the app to the Page's messaging webhooks;
the callback URL and verify token are set once in Meta's app dashboard.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from shared.channels.answers import ProviderError
from shared.channels.base import Account, Connected, Sender
from shared.channels.http import ProviderClient
from shared.channels.meta.graph import MetaSettings, MetaSetup
from shared.channels.meta.messaging import MetaMessagingChannel
from shared.errors import Unprocessable

# What the inbox reads: messages and echoes of replies sent elsewhere, statuses,
# edits, buttons and reactions.
WEBHOOK_FIELDS = (
    "messages",
    "message_echoes",
    "message_deliveries",
    "message_reads",
    "message_edits",
    "messaging_postbacks",
    "message_reactions",
)


class MessengerSetup(MetaSetup):
    page_id: str = Field(min_length=1, pattern=r"^\d+$")
    page_access_token: str = Field(min_length=1)


class Messenger(MetaMessagingChannel):
    name: ClassVar[str] = "messenger"
    Setup: ClassVar[type[BaseModel]] = MessengerSetup
    webhook_object: ClassVar[str] = "page"
    token_secret: ClassVar[str] = "page_access_token"
    profile_fields: ClassVar[str] = "first_name,last_name,profile_pic"
    media_types: ClassVar[frozenset[str]] = frozenset({"image", "audio", "video", "document"})
    max_text: ClassVar[int] = 2000

    def api_base(self) -> str:
        return MetaSettings.current().graph_url

    def profile(self, external_id: str, body: dict[str, Any]) -> Sender:
        name = " ".join(p for p in (body.get("first_name"), body.get("last_name")) if p)
        return Sender(
            external_id=external_id,
            name=name or body.get("name"),
            avatar_url=body.get("profile_pic"),
        )

    async def connect(self, client: ProviderClient, *, setup: Any, webhook_url: str) -> Connected:
        assert isinstance(setup, MessengerSetup)
        token = setup.page_access_token
        try:
            page = await self.call(client, token, "GET", "me", params={"fields": "id,name"})
        except ProviderError as exc:
            raise Unprocessable(f"Meta refused the page access token: {exc.message}") from exc
        if str(page.get("id")) != setup.page_id:
            raise Unprocessable(
                f"The page access token is not one of page {setup.page_id}",
                details={"token_of": page.get("id")},
            )
        await self.call(
            client,
            token,
            "POST",
            f"{setup.page_id}/subscribed_apps",
            params={"subscribed_fields": ",".join(WEBHOOK_FIELDS)},
        )
        return Connected(
            external_id=setup.page_id,
            settings={"page_name": page.get("name")},
            secrets={
                "page_access_token": token,
                "app_secret": setup.app_secret,
                "verify_token": setup.verify_token,
            },
        )

    async def disconnect(self, client: ProviderClient, account: Account) -> None:
        await self.call(
            client,
            account.secret(self.token_secret),
            "DELETE",
            f"{account.external_id}/subscribed_apps",
        )
