"""Telegram Bot API updates, parsed without a database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.channels.base import Ignored, InboundMessage
from shared.errors import BadRequest
from tests.channels.parsing import events, only

MARTA = "352170947"


@pytest.mark.parametrize(
    ("fixture", "content_type", "body", "message_id"),
    [
        ("text_message", "text", "Olá! Vocês entregam em Lisboa?", 1365),
        ("photo_message", "image", "Este, em azul", 1366),
        ("document_message", "document", None, 1367),
        ("voice_message", "audio", None, 1368),
        ("location_message", "location", "38.707502,-9.136411", 1369),
        ("contact_message", "contacts", "Marta Silva", 1370),
        ("sticker_message", "sticker", None, 1371),
    ],
)
def test_each_message_becomes_its_content(
    fixture: str, content_type: str, body: str | None, message_id: int
):
    message = only("telegram", fixture)
    assert isinstance(message, InboundMessage)
    assert (message.content_type, message.body) == (content_type, body)
    # message ids are per chat: the chat id makes them unique
    assert message.provider_message_id == f"{MARTA}:{message_id}"
    assert (message.sender.external_id, message.sender.name) == (MARTA, "Marta Silva")
    assert message.metadata["username"] == "marta_s"
    assert not message.edited


def test_a_text_keeps_its_time():
    assert only("telegram", "text_message").occurred_at == datetime(
        2024, 11, 14, 12, 0, 0, tzinfo=UTC
    )


def test_files_are_referenced_by_their_file_id():
    [photo] = only("telegram", "photo_message").attachments
    assert (photo.type, photo.media_id, photo.size) == (
        "image",
        "AgACAgQAAxkBAAIBVmVQ-large",  # the largest size Telegram offers
        71290,
    )
    [document] = only("telegram", "document_message").attachments
    assert (document.filename, document.mime_type, document.size) == (
        "orcamento.pdf",
        "application/pdf",
        48211,
    )
    [voice] = only("telegram", "voice_message").attachments
    assert (voice.type, voice.mime_type) == ("audio", "audio/ogg")


def test_a_shared_own_contact_gives_the_phone_number():
    message = only("telegram", "contact_message")
    assert message.sender.phone == "+351912345678"
    assert message.metadata["contacts"][0]["user_id"] == int(MARTA)


def test_a_location_keeps_its_coordinates():
    location = only("telegram", "location_message").metadata["location"]
    assert location == {"latitude": 38.707502, "longitude": -9.136411}


def test_an_edit_replaces_the_message_it_names():
    edit = only("telegram", "edited_message")
    assert edit.edited
    assert edit.provider_message_id == only("telegram", "text_message").provider_message_id
    assert edit.body == "Olá! Vocês entregam em Lisboa e no Porto?"
    assert edit.occurred_at == datetime(2024, 11, 14, 12, 1, 0, tzinfo=UTC)  # the edit's time


def test_an_update_is_one_event_keyed_by_its_update_id():
    [event] = events("telegram", "text_message")
    assert (event.provider_event_id, event.event_type) == ("update:728392001", "message")


@pytest.mark.parametrize(
    ("fixture", "reason"),
    [
        ("group_message", "only private chats are part of the inbox"),
        ("callback_query", "callback_query updates are not used"),
    ],
)
def test_what_the_inbox_does_not_use_is_ignored(fixture: str, reason: str):
    assert only("telegram", fixture) == Ignored(reason=reason)


@pytest.mark.parametrize("fixture", ["send_message_response", "get_me", "unauthorized"])
def test_an_api_answer_is_not_an_update(fixture: str):
    with pytest.raises(BadRequest):
        events("telegram", fixture)
