"""WhatsApp Cloud API webhooks, parsed without a database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.channels.base import Ignored, InboundMessage, StatusUpdate
from shared.errors import BadRequest
from tests.channels.parsing import events, only, parsed

KERRY = "16315551181"
OURS = "wamid.HBgLMTYzMTU1NTExODEVAgARGBJCMDk4RUM0QjI5QjZBOTg1MjQA"


@pytest.mark.parametrize(
    ("fixture", "content_type", "body"),
    [
        ("text_message", "text", "Hi! Do you ship to Lisbon?"),
        ("image_message", "image", "This one, in blue"),
        ("document_message", "document", "Invoice March"),
        ("audio_message", "audio", None),
        ("video_message", "video", None),
        ("sticker_message", "sticker", None),
        ("location_message", "location", "Praça do Comércio"),
        ("contacts_message", "contacts", "Ana Lima"),
        ("interactive_button_reply", "interactive", "Yes, confirm"),
        ("interactive_list_reply", "interactive", "Medium"),
        ("button_message", "interactive", "Stop promotions"),
        ("unsupported_message", "unsupported", None),
    ],
)
def test_each_message_type_becomes_its_content(fixture: str, content_type: str, body: str | None):
    message = only("whatsapp", fixture)
    assert isinstance(message, InboundMessage)
    assert (message.content_type, message.body) == (content_type, body)
    assert message.sender.model_dump() == {
        "external_id": KERRY,
        "name": "Kerry Fisher",
        "phone": f"+{KERRY}",
        "email": None,
        "avatar_url": None,
    }
    assert message.provider_message_id.startswith("wamid.")
    assert not message.echo


def test_a_text_keeps_its_id_and_time():
    message = only("whatsapp", "text_message")
    assert message.provider_message_id == (
        "wamid.HBgLMTYzMTU1NTExODEVAgASGBQzQUVGMTk5QjJGMEUzOTk4Njk1NAA="
    )
    assert message.occurred_at == datetime(2024, 11, 14, 12, 0, 0, tzinfo=UTC)
    assert message.attachments == []


def test_media_is_referenced_by_its_media_id_for_a_later_download():
    [attachment] = only("whatsapp", "image_message").attachments
    assert (attachment.type, attachment.media_id, attachment.caption) == (
        "image",
        "1003383421387256",
        "This one, in blue",
    )
    assert attachment.mime_type == "image/jpeg"
    [voice] = only("whatsapp", "audio_message").attachments
    assert (voice.media_id, voice.mime_type) == ("1258331318428376", "audio/ogg; codecs=opus")


def test_a_location_and_a_button_keep_their_details():
    place = only("whatsapp", "location_message").metadata["location"]
    assert place["address"].startswith("Praça do Comércio")
    button = only("whatsapp", "button_message")
    assert button.metadata["payload"] == "STOP_PROMOTIONS"
    assert button.metadata["reply_to"].startswith("wamid.")
    reply = only("whatsapp", "interactive_list_reply").metadata
    assert (reply["type"], reply["reply"]["id"]) == ("list_reply", "size-m")


@pytest.mark.parametrize(
    ("fixture", "status", "at"),
    [
        ("status_sent", "sent", datetime(2024, 11, 14, 12, 1, 0, tzinfo=UTC)),
        ("status_delivered", "delivered", datetime(2024, 11, 14, 12, 1, 2, tzinfo=UTC)),
        ("status_read", "read", datetime(2024, 11, 14, 12, 1, 40, tzinfo=UTC)),
        ("status_failed", "failed", datetime(2024, 11, 14, 12, 1, 1, tzinfo=UTC)),
    ],
)
def test_statuses_name_our_message(fixture: str, status: str, at: datetime):
    update = only("whatsapp", fixture)
    assert isinstance(update, StatusUpdate)
    assert (update.provider_message_id, update.status, update.occurred_at) == (OURS, status, at)
    assert update.watermark is None
    assert (update.error is None) == (status != "failed")


def test_a_failed_status_carries_metas_error():
    error = only("whatsapp", "status_failed").error
    assert (error["code"], error["title"]) == (131047, "Re-engagement message")


def test_a_batch_is_split_into_events_with_unique_provider_ids():
    assert [(e.provider_event_id, e.event_type) for e in events("whatsapp", "batch")] == [
        ("message:wamid.BATCH-1", "message"),
        ("message:wamid.BATCH-2", "message"),
        ("message:wamid.BATCH-3", "message"),
        ("message:wamid.BATCH-4", "message"),
        ("status:wamid.OUT-1:delivered", "status"),
    ]
    first, second, *_, status = parsed("whatsapp", "batch")
    assert (first.body, first.sender.external_id) == ("first", KERRY)
    assert (second.body, second.sender.name, second.sender.phone) == (
        "Olá",
        "João Pereira",
        "+351912000111",
    )
    assert (status.provider_message_id, status.status) == ("wamid.OUT-1", "delivered")


@pytest.mark.parametrize(
    ("fixture", "reason"),
    [
        ("reaction_message", "reaction messages are not stored"),
        ("template_status_update", "template order_update is APPROVED (applied to the template)"),
    ],
)
def test_what_the_inbox_does_not_use_is_ignored_with_a_reason(fixture: str, reason: str):
    assert only("whatsapp", fixture) == Ignored(reason=reason)


def test_a_message_to_another_phone_number_is_ignored():
    [ignored] = parsed("whatsapp", "text_message", external_id="999999999999999")
    assert ignored == Ignored(reason="for another phone number")


@pytest.mark.parametrize("fixture", ["send_text_response", "error_rate_limited"])
def test_an_api_answer_is_not_a_webhook(fixture: str):
    with pytest.raises(BadRequest):
        events("whatsapp", fixture)
