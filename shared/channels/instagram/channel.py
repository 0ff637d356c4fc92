"""Instagram Direct through the Instagram API with Instagram Login (no Facebook Page
needed): the same `entry[].messaging[]` webhook as Messenger, on graph.instagram.com.

Account: external_id = the professional account's Instagram user id (the `entry.id`
of its webhooks, read from the token at connect time); secrets access_token (an
Instagram User token), app_secret (the Instagram app secret, which signs the
webhooks), verify_token; settings username. Echoes come with the `messages` field;
reads arrive as `messaging_seen`, with the id of the message seen.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from shared.channels.answers import ProviderError
from shared.channels.base import Account, Connected, Sender
from shared.channels.config import ChannelSettings
from shared.channels.http import ProviderClient
from shared.channels.meta.graph import MetaSetup
from shared.channels.meta.messaging import MetaMessagingChannel
from shared.errors import Unprocessable

WEBHOOK_FIELDS = ("messages", "messaging_seen", "messaging_postbacks", "message_reactions")


class InstagramSetup(MetaSetup):
    access_token: str = Field(min_length=1)


def _me(body: dict[str, Any]) -> dict[str, Any]:
    """/me is a node; some of Meta's examples wrap it in a one-item `data` list."""
    data = body.get("data")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return data[0]
    return body


class InstagramSettings(ChannelSettings, env_prefix="CONNECTGAIN_INSTAGRAM_"):
    """The Instagram API with Instagram Login (messaging without a Facebook Page)."""

    graph_url: str = "https://graph.instagram.com/v21.0"


class Instagram(MetaMessagingChannel):
    name: ClassVar[str] = "instagram"
    Setup: ClassVar[type[BaseModel]] = InstagramSetup
    webhook_object: ClassVar[str] = "instagram"
    token_secret: ClassVar[str] = "access_token"
    profile_fields: ClassVar[str] = "name,username,profile_pic"
    media_types: ClassVar[frozenset[str]] = frozenset({"image", "audio", "video"})
    max_text: ClassVar[int] = 1000

    def api_base(self) -> str:
        return InstagramSettings.current().graph_url

    def profile(self, external_id: str, body: dict[str, Any]) -> Sender:
        username = body.get("username")
        return Sender(
            external_id=external_id,
            name=body.get("name") or (f"@{username}" if username else None),
            avatar_url=body.get("profile_pic"),
        )

    async def connect(self, client: ProviderClient, *, setup: Any, webhook_url: str) -> Connected:
        assert isinstance(setup, InstagramSetup)
        token = setup.access_token
        try:
            me = _me(
                await self.call(
                    client, token, "GET", "me", params={"fields": "user_id,username,name"}
                )
            )
        except ProviderError as exc:
            raise Unprocessable(f"Meta refused the Instagram access token: {exc.message}") from exc
        if not me.get("user_id"):
            raise Unprocessable(
                "The token is not an Instagram professional account's (no user_id)",
                details={"answer": me},
            )
        await self.call(
            client,
            token,
            "POST",
            "me/subscribed_apps",
            params={"subscribed_fields": ",".join(WEBHOOK_FIELDS)},
        )
        return Connected(
            external_id=str(me["user_id"]),
            settings={"username": me.get("username"), "account_name": me.get("name")},
            secrets={
                "access_token": token,
                "app_secret": setup.app_secret,
                "verify_token": setup.verify_token,
            },
        )

    async def disconnect(self, client: ProviderClient, account: Account) -> None:
        await self.call(client, account.secret(self.token_secret), "DELETE", "me/subscribed_apps")
