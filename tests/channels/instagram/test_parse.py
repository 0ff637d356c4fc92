"""Instagram messaging webhooks, parsed without a database."""

from __future__ import annotations

import pytest

from shared.channels.base import Ignored, InboundMessage, StatusUpdate
from shared.channels.registry import CHANNELS
from shared.errors import BadRequest
from tests.channels.parsing import account, events, only, parsed, request

LUCAS = "1043562978112233"  # the Instagram user (IGSID) writing to the account


@pytest.mark.parametrize(
    ("fixture", "content_type", "body"),
    [
        ("text_message", "text", None),  # body checked below
        ("image_message", "image", None),
        ("audio_message", "audio", None),
        ("video_message", "video", None),
        ("file_message", "document", None),
        ("reel_message", "video", None),
        ("story_mention", "image", None),
        ("story_reply", "text", "Is this one still available?"),
        ("share_message", "text", "Linen shirt, sand. New season in store now."),
        ("quick_reply_message", "interactive", "Size M"),
        ("postback", "interactive", "Track my order"),
        ("reply_message", "text", "Perfect, thanks"),
        ("unsupported_message", "unsupported", None),
    ],
)
def test_each_message_becomes_its_content(fixture: str, content_type: str, body: str | None):
    message = only("instagram", fixture)
    assert isinstance(message, InboundMessage)
    assert message.content_type == content_type
    if fixture != "text_message":
        assert message.body == body
    assert message.sender.external_id == LUCAS
    assert not message.echo


def test_a_text_keeps_its_words():
    assert only("instagram", "text_message").body.startswith("Olá! Do you ship the linen shirt")


def test_every_image_of_a_message_is_kept():
    urls = [a.url for a in only("instagram", "image_message").attachments]
    assert [u.split("asset_id=")[1].split("&")[0] for u in urls] == [
        "17998466780563201",
        "17998466780563202",
    ]


def test_reels_stories_and_shares_keep_what_was_shared():
    [reel] = only("instagram", "reel_message").attachments
    assert (reel.type, reel.caption) == ("ig_reel", "How we dye our linen")
    [mention] = only("instagram", "story_mention").attachments
    assert mention.type == "story_mention"
    story = only("instagram", "story_reply").metadata["reply_to_story"]
    assert story["id"] == "3478812345678901234"
    share = only("instagram", "share_message").attachments[0]
    assert (share.type, share.media_id) == ("share", "18139494541428835")


def test_an_echo_is_the_business_writing():
    echo = only("instagram", "echo_message")
    assert echo.echo
    assert (echo.sender.external_id, echo.body) == (LUCAS, "Yes, we ship to Porto in 2 days.")


def test_a_read_names_the_person():
    update = only("instagram", "read")
    assert isinstance(update, StatusUpdate)
    assert (update.status, update.recipient) == ("read", LUCAS)


@pytest.mark.parametrize(
    ("fixture", "reason"),
    [
        ("reaction", "reactions are not stored"),
        ("deleted_message", "the contact deleted a message"),
        ("comment", "comments events are not used"),
    ],
)
def test_what_the_inbox_does_not_use_is_ignored(fixture: str, reason: str):
    assert only("instagram", fixture) == Ignored(reason=reason)


def test_a_comment_is_an_event_of_its_own_kind():
    [event] = events("instagram", "comment")
    assert event.event_type == "comments"
    assert event.provider_event_id.startswith("comments:")


def test_an_event_of_another_account_is_ignored():
    [ignored] = parsed("instagram", "text_message", external_id="1")
    assert ignored == Ignored(reason="for another instagram account")


def test_a_messenger_body_is_not_an_instagram_webhook():
    with pytest.raises(BadRequest):
        CHANNELS["instagram"].events(request("messenger", "text_message"), account("instagram"))


@pytest.mark.parametrize("fixture", ["send_response", "me", "error_invalid_token"])
def test_an_api_answer_is_not_a_webhook(fixture: str):
    with pytest.raises(BadRequest):
        events("instagram", fixture)
