"""Messenger Platform webhooks, parsed without a database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.channels.base import Ignored, InboundMessage, StatusUpdate
from shared.errors import BadRequest
from tests.channels.parsing import events, only, parsed

ANA = "6945632145592814"  # the person (PSID) writing to the page


@pytest.mark.parametrize(
    ("fixture", "content_type", "body"),
    [
        ("text_message", "text", "Hi! Do you rent e-bikes for the weekend?"),
        ("image_message", "image", None),
        ("audio_message", "audio", None),
        ("video_message", "video", None),
        ("file_message", "document", None),
        ("sticker_message", "sticker", None),
        ("location_message", "location", "Pinned Location"),
        ("fallback_message", "text", "https://www.visitlisboa.com/en/places/belem-tower"),
        ("quick_reply_message", "interactive", "Saturday and Sunday"),
        ("postback", "interactive", "Get Started"),
        ("reply_message", "text", "Yes, that one please"),
        ("standby_message", "text", "Is anyone there?"),
    ],
)
def test_each_message_becomes_its_content(fixture: str, content_type: str, body: str | None):
    message = only("messenger", fixture)
    assert isinstance(message, InboundMessage)
    assert (message.content_type, message.body) == (content_type, body)
    assert message.sender.external_id == ANA
    assert not message.echo
    assert message.provider_message_id.startswith("m_")


def test_a_text_keeps_its_id_and_its_time_in_milliseconds():
    message = only("messenger", "text_message")
    assert message.provider_message_id.startswith("m_Fc1JtLgp4Y2ZKxdWX8sQ7t3Z9h2eW0")
    assert message.occurred_at == datetime(2024, 11, 14, 12, 0, 0, 123000, tzinfo=UTC)


def test_attachments_keep_their_urls_and_a_sticker_its_id():
    [image] = only("messenger", "image_message").attachments
    assert image.type == "image"
    assert image.url.startswith("https://scontent.xx.fbcdn.net/")
    [document] = only("messenger", "file_message").attachments
    assert document.type == "document"
    sticker = only("messenger", "sticker_message").attachments[0]
    assert sticker.media_id == "369239263222822"


def test_a_location_keeps_its_coordinates():
    place = only("messenger", "location_message").metadata["location"]
    assert (place["latitude"], place["longitude"], place["name"]) == (
        38.707502,
        -9.136411,
        "Pinned Location",
    )


def test_buttons_and_replies_keep_what_bots_need():
    assert only("messenger", "quick_reply_message").metadata["quick_reply"]["payload"]
    assert only("messenger", "postback").metadata["postback"]["title"] == "Get Started"
    assert only("messenger", "reply_message").metadata["reply_to"].startswith("m_Ou1tX6pL3kNq8")


@pytest.mark.parametrize(
    ("fixture", "shared"),
    [
        ("email_quick_reply", {"email": "Ana.Ferreira@example.pt"}),
        ("phone_quick_reply", {"phone": "+351912345678"}),
    ],
)
def test_a_shared_address_is_matched_to_the_contact(fixture: str, shared: dict[str, str]):
    sender = only("messenger", fixture).sender
    assert sender.model_dump(include={"email", "phone"}, exclude_none=True) == shared


@pytest.mark.parametrize("fixture", ["echo_message", "echo_template_message"])
def test_an_echo_is_the_business_writing_to_the_person(fixture: str):
    echo = only("messenger", fixture)
    assert echo.echo
    assert echo.sender.external_id == ANA  # the recipient of the echo: the contact
    assert not echo.sender.email and not echo.sender.phone


def test_an_echo_keeps_its_app_and_a_template_its_payload():
    echo = only("messenger", "echo_message")
    assert (echo.body, echo.metadata["app_id"]) == (
        "Yes! 25 EUR a day, helmet included.",
        "263902037430900",
    )
    template = only("messenger", "echo_template_message")
    assert template.content_type == "template"
    assert template.metadata["template"]


def test_an_edit_names_the_message_it_changes():
    edit = only("messenger", "message_edit")
    assert edit.edited
    assert edit.provider_message_id == only("messenger", "text_message").provider_message_id
    assert edit.body == "Hi! Do you rent e-bikes for the whole weekend?"
    assert edit.metadata == {"num_edit": 1}


@pytest.mark.parametrize(
    ("fixture", "status", "watermark"),
    [
        ("delivery", "delivered", datetime(2024, 11, 14, 12, 2, 0, 123000, tzinfo=UTC)),
        ("read", "read", datetime(2024, 11, 14, 12, 3, 0, 123000, tzinfo=UTC)),
    ],
)
def test_delivery_and_read_are_watermarks_for_the_person(
    fixture: str, status: str, watermark: datetime
):
    update = only("messenger", fixture)
    assert isinstance(update, StatusUpdate)
    assert (update.status, update.watermark, update.recipient) == (status, watermark, ANA)
    assert update.provider_message_id is None


def test_a_batch_is_split_into_events_in_order():
    kinds = [e.event_type for e in events("messenger", "batch")]
    assert kinds == ["message", "message", "read", "message", "reaction"]
    assert len({e.provider_event_id for e in events("messenger", "batch")}) == 5
    bodies = [p.body for p in parsed("messenger", "batch") if isinstance(p, InboundMessage)]
    assert bodies == ["first", "Olá", "second"]


@pytest.mark.parametrize(
    ("fixture", "reason"),
    [
        ("reaction", "reactions are not stored"),
        ("referral", "referral events are not used"),
    ],
)
def test_what_the_inbox_does_not_use_is_ignored(fixture: str, reason: str):
    assert only("messenger", fixture) == Ignored(reason=reason)


def test_an_event_of_another_page_is_ignored():
    [ignored] = parsed("messenger", "text_message", external_id="1")
    assert ignored == Ignored(reason="for another messenger account")


@pytest.mark.parametrize("fixture", ["send_response", "profile", "error_rate_limited"])
def test_an_api_answer_is_not_a_webhook(fixture: str):
    with pytest.raises(BadRequest):
        events("messenger", fixture)
