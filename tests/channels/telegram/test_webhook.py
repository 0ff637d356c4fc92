"""Telegram's own updates, through the real webhook into the database."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.db import Connection
from tests.channels.kit import post
from tests.channels.telegram.kit import TelegramKit
from tests.fixtures import raw
from tests.support import make_org, make_user

KIT = TelegramKit()


@pytest.fixture
async def account(db: Connection):
    return await KIT.create_account(db, await make_org(db, await make_user(db)))


async def deliver(client: httpx.AsyncClient, account: Any, fixture: str) -> httpx.Response:
    return await post(client, KIT, account.id, KIT.signed_raw(account, raw("telegram", fixture)))


EXPECTED: dict[str, dict[str, Any]] = {
    "text_message": {"content_type": "text", "body": "Olá! Vocês entregam em Lisboa?"},
    "photo_message": {
        "content_type": "image",
        "body": "Este, em azul",
        "attachment": {"media_id": "AgACAgQAAxkBAAIBVmVQ-large", "size": 71290},
    },
    "document_message": {
        "content_type": "document",
        "attachment": {"filename": "orcamento.pdf", "mime_type": "application/pdf"},
    },
    "voice_message": {"content_type": "audio", "attachment": {"mime_type": "audio/ogg"}},
    "location_message": {"content_type": "location", "body": "38.707502,-9.136411"},
    "contact_message": {"content_type": "contacts", "body": "Marta Silva"},
    "sticker_message": {
        "content_type": "sticker",
        "attachment": {"media_id": "CAACAgIAAxkBAAIBWWVQ-sticker"},
    },
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
async def test_every_content_type_is_stored(
    client: httpx.AsyncClient, account: Any, db: Connection, fixture: str
):
    response = await deliver(client, account, fixture)
    assert response.json()["processed"] == 1, response.text
    message = await db.fetchrow(
        "select content_type::text, body, attachments, provider_message_id from messages"
    )
    expected = EXPECTED[fixture]
    assert message["content_type"] == expected["content_type"]
    if "body" in expected:
        assert message["body"] == expected["body"]
    if "attachment" in expected:
        assert message["attachments"][0].items() >= expected["attachment"].items()
    assert message["provider_message_id"].startswith("352170947:")
    contact = await db.fetchrow(
        "select c.name, i.external_id from contacts c"
        " join contact_identities i on i.contact_id = c.id"
    )
    assert dict(contact) == {"name": "Marta Silva", "external_id": "352170947"}


async def test_an_edited_message_changes_the_stored_text(
    client: httpx.AsyncClient, account: Any, db: Connection
):
    await deliver(client, account, "text_message")
    response = await deliver(client, account, "edited_message")
    assert response.json()["processed"] == 1
    rows = await db.fetch("select body, metadata from messages")
    assert len(rows) == 1
    assert rows[0]["body"] == "Olá! Vocês entregam em Lisboa e no Porto?"
    assert "edited_at" in rows[0]["metadata"]


async def test_sharing_ones_own_contact_teaches_the_phone_number(
    client: httpx.AsyncClient, account: Any, db: Connection
):
    await deliver(client, account, "text_message")
    assert await db.fetchval("select phone from contacts") is None
    await deliver(client, account, "contact_message")
    assert await db.fetchval("select phone from contacts") == "+351912345678"


@pytest.mark.parametrize("fixture", ["group_message", "callback_query"])
async def test_updates_outside_the_inbox_are_acknowledged(
    client: httpx.AsyncClient, account: Any, db: Connection, fixture: str
):
    response = await deliver(client, account, fixture)
    assert response.status_code == 200
    assert response.json()["ignored"] == 1
    assert await db.fetchval("select count(*) from messages") == 0
