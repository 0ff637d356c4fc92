"""Telegram Bot API: webhook updates (message, edited_message) and sending.

Account: external_id = the bot's user id; secrets bot_token, webhook_secret (the
secret_token given to setWebhook); settings username. Private chats only: a
group is not one contact.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.channels import answers, base, http
from shared.channels.config import ChannelSettings
from shared.errors import BadRequest, Unauthorized, Unprocessable

SECRET_HEADER = "x-telegram-bot-api-secret-token"
UPDATE_KINDS = ("message", "edited_message")


class Update(BaseModel):
    model_config = ConfigDict(extra="allow")
    update_id: int


class TelegramSetup(BaseModel):
    bot_token: str = Field(pattern=r"^\d+:[A-Za-z0-9_-]{20,}$")


def _file(kind: base.ContentType, key: str) -> Callable[[dict[str, Any]], base.Content]:
    def parse(m: dict[str, Any]) -> base.Content:
        item = m[key]
        if key == "photo":  # several sizes; keep the largest
            item = max(item, key=lambda p: p.get("file_size") or p.get("width", 0))
        return base.attached(
            kind,
            item,
            caption=m.get("caption"),
            id_key="file_id",
            filename_key="file_name",
            size_key="file_size",
        )

    return parse


def _location(m: dict[str, Any]) -> base.Content:
    venue = m.get("venue") or {}
    place = venue.get("location") or m["location"]
    body = venue.get("title") or f"{place.get('latitude')},{place.get('longitude')}"
    return "location", body, [], {"location": place, "venue": venue or None}


def _contact(m: dict[str, Any]) -> base.Content:
    card = m["contact"]
    name = " ".join(filter(None, [card.get("first_name"), card.get("last_name")]))
    return "contacts", name or card.get("phone_number"), [], {"contacts": [card]}


# The first key present in a message decides its content type.
CONTENT: dict[str, Callable[[dict[str, Any]], base.Content]] = {
    "text": lambda m: ("text", m["text"], [], {}),
    "photo": _file("image", "photo"),
    "sticker": _file("sticker", "sticker"),
    "voice": _file("audio", "voice"),
    "audio": _file("audio", "audio"),
    "video": _file("video", "video"),
    "video_note": _file("video", "video_note"),
    "animation": _file("video", "animation"),
    "document": _file("document", "document"),
    "venue": _location,
    "location": _location,
    "contact": _contact,
}


# A refusal: {"ok": false, "error_code", "description"}; flood control (429) says how
# long to wait in parameters.retry_after.
ERRORS = answers.ErrorShape(
    provider="Telegram",
    message=("description",),
    code=("error_code",),
    wait=("parameters", "retry_after"),
)


class TelegramSettings(ChannelSettings, env_prefix="CONNECTGAIN_TELEGRAM_"):
    api_url: str = "https://api.telegram.org"


class Telegram(base.Channel):
    name: ClassVar[str] = "telegram"
    Setup: ClassVar[type[BaseModel]] = TelegramSetup

    def verify(self, request: base.WebhookRequest, account: base.Account) -> None:  # no nonce
        given = request.headers.get(SECRET_HEADER, "")
        expected = account.secret("webhook_secret")
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized(
                "Missing or wrong X-Telegram-Bot-Api-Secret-Token", code="invalid_signature"
            )

    def events(self, request: base.WebhookRequest, account: base.Account) -> list[base.RawEvent]:
        body = request.json()
        try:
            update = Update.model_validate(body)
        except ValidationError as exc:
            raise BadRequest("Not a Telegram update", details=exc.errors()) from exc
        kind = next((k for k in body if k != "update_id"), "empty")
        return [
            base.RawEvent(
                provider_event_id=f"update:{update.update_id}", event_type=kind, payload=body
            )
        ]

    def parse(self, event: base.RawEvent, account: base.Account) -> base.Parsed:
        if event.event_type not in UPDATE_KINDS:
            return base.Ignored(reason=f"{event.event_type} updates are not used")
        m = event.payload.get(event.event_type)
        if not isinstance(m, dict):
            raise ValueError(f"{event.event_type} is not an object")
        sender = m.get("from") or {}
        chat = m.get("chat") or {}
        for name, part in (("from", sender), ("chat", chat)):
            if not isinstance(part, dict):
                raise ValueError(f"{event.event_type}.{name} is not an object")
        if chat.get("type") != "private":
            return base.Ignored(reason="only private chats are part of the inbox")
        if sender.get("is_bot"):
            return base.Ignored(reason="messages from bots are not stored")
        kind = next((k for k in CONTENT if k in m), None)
        if kind is None:
            content: base.Content = ("unsupported", None, [], {"keys": sorted(m)})
        else:
            content = CONTENT[kind](m)
        content_type, body, attachments, metadata = content
        if reply := m.get("reply_to_message"):
            metadata["reply_to"] = f"{chat['id']}:{reply['message_id']}"
        if sender.get("username"):
            metadata["username"] = sender["username"]
        shared = m.get("contact") or {}
        own_phone = (
            shared.get("phone_number") if shared.get("user_id") == sender.get("id") else None
        )
        name = " ".join(filter(None, [sender.get("first_name"), sender.get("last_name")]))
        return base.InboundMessage(
            provider_message_id=f"{chat['id']}:{m['message_id']}",
            sender=base.Sender(external_id=str(sender["id"]), name=name or None, phone=own_phone),
            content_type=content_type,
            body=body,
            attachments=attachments,
            metadata=metadata,
            occurred_at=datetime.fromtimestamp(m.get("edit_date") or m["date"], UTC),
            edited=event.event_type == "edited_message",
        )

    async def _call(
        self,
        client: http.ProviderClient,
        token: str,
        method: str,
        payload: dict[str, Any],
        *,
        at_most_once: bool = False,
    ) -> Any:
        """{"ok": true, "result": …} or a refusal {"ok": false, "error_code", "description"}."""
        response = await client.call(
            "POST",
            f"{TelegramSettings.current().api_url}/bot{token}/{method}",
            errors=ERRORS,
            json=payload,
            at_most_once=at_most_once,
        )
        body = answers.json_body(response)
        if answers.dig(body, "ok") is not True or "result" not in body:
            raise answers.unexpected(response, '"ok": true and a result')
        return body["result"]

    async def send(
        self, client: http.ProviderClient, account: base.Account, message: base.OutboundMessage
    ) -> base.SendResult:
        token = account.secret("bot_token")
        payload: dict[str, Any] = {"chat_id": message.to}
        if message.media_url and message.media_type:
            method, field = {
                "image": ("sendPhoto", "photo"),
                "audio": ("sendAudio", "audio"),
                "video": ("sendVideo", "video"),
                "document": ("sendDocument", "document"),
            }[message.media_type]
            payload[field] = message.media_url
            if message.text:
                payload["caption"] = message.text
        else:
            method = "sendMessage"
            payload["text"] = message.text
        if keyboard := message.metadata.get("reply_markup"):  # a bot's options
            payload["reply_markup"] = keyboard
        result = await self._call(client, token, method, payload, at_most_once=True)
        chat, number = answers.dig(result, "chat", "id"), answers.dig(result, "message_id")
        if not isinstance(chat, int) or not isinstance(number, int):
            raise answers.ProviderError(
                "Telegram answered without the sent Message's chat and message_id",
                outcome="unknown",
                body=result,
            )
        return base.SendResult(provider_message_id=f"{chat}:{number}", response=result)

    async def connect(
        self, client: http.ProviderClient, *, setup: Any, webhook_url: str
    ) -> base.Connected:
        assert isinstance(setup, TelegramSetup)
        try:
            bot = await self._call(client, setup.bot_token, "getMe", {})
        except answers.ProviderError as exc:
            raise Unprocessable(f"Telegram refused the bot token: {exc.message}") from exc
        secret = secrets.token_urlsafe(32)
        await self._call(
            client,
            setup.bot_token,
            "setWebhook",
            {"url": webhook_url, "secret_token": secret, "allowed_updates": list(UPDATE_KINDS)},
        )
        return base.Connected(
            external_id=str(bot["id"]),
            settings={"username": bot.get("username"), "bot_name": bot.get("first_name")},
            secrets={"bot_token": setup.bot_token, "webhook_secret": secret},
        )

    async def disconnect(self, client: http.ProviderClient, account: base.Account) -> None:
        await self._call(client, account.secret("bot_token"), "deleteWebhook", {})
