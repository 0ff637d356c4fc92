"""Twilio messaging webhooks (form-encoded), parsed without a database."""

from __future__ import annotations

import pytest

from shared.channels.base import Ignored, InboundMessage, StatusUpdate, WebhookRequest
from shared.channels.registry import CHANNELS
from shared.errors import BadRequest
from tests.channels.parsing import account, events, only, parsed

CALLER = "+14155550123"
OURS = "SM9f1c2e3d4b5a69788a7b6c5d4e3f2a1b"


@pytest.mark.parametrize(
    ("fixture", "body", "opt_out"),
    [
        ("text_message", "Hi, is my order shipped?", None),
        ("stop_message", "Stop", True),
        ("start_message", "START", False),
    ],
)
def test_a_text_and_its_opt_out_keywords(fixture: str, body: str, opt_out: bool | None):
    message = only("sms", fixture)
    assert isinstance(message, InboundMessage)
    assert (message.content_type, message.body, message.opt_out) == ("text", body, opt_out)
    assert message.sender.model_dump(exclude_none=True) == {"external_id": CALLER, "phone": CALLER}
    assert message.metadata == {"segments": "1", "from_country": "US"}


def test_a_text_is_keyed_by_its_message_sid():
    assert only("sms", "text_message").provider_message_id == "SM1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"
    [event] = events("sms", "text_message")
    assert event.provider_event_id == "message:SM1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"


def test_an_mms_without_text_is_its_first_media_and_keeps_every_one():
    message = only("sms", "mms_message")
    assert (message.content_type, message.body) == ("image", None)
    assert [(a.type, a.mime_type) for a in message.attachments] == [
        ("image", "image/jpeg"),
        ("document", "application/pdf"),
    ]
    assert message.attachments[0].url.endswith("/Media/ME1111111111111111111111111111111a")


@pytest.mark.parametrize(
    ("fixture", "status", "error"),
    [
        ("status_sent", "sent", None),
        ("status_delivered", "delivered", None),
        ("status_read", "read", None),
        ("status_failed", "failed", "30008"),
        ("status_undelivered", "failed", "30003"),
    ],
)
def test_statuses_name_our_message(fixture: str, status: str, error: str | None):
    update = only("sms", fixture)
    assert isinstance(update, StatusUpdate)
    assert (update.provider_message_id, update.status) == (OURS, status)
    assert (update.error or {}).get("code") == error
    [event] = events("sms", fixture)
    assert event.provider_event_id.startswith(f"status:{OURS}:")


def test_a_queued_status_is_not_tracked():
    assert only("sms", "status_queued") == Ignored(reason="status queued is not tracked")


def test_a_text_to_another_number_or_of_another_twilio_account_is_ignored():
    [other_number] = parsed("sms", "text_message", external_id="+14155550199")
    assert other_number == Ignored(reason="for another phone number")
    [event] = events("sms", "text_message")
    foreign = event.model_copy(update={"payload": {**event.payload, "AccountSid": "AC0"}})
    assert CHANNELS["sms"].parse(foreign, account("sms")) == Ignored(
        reason="for another Twilio account"
    )


def test_a_json_body_is_not_a_twilio_webhook():
    request = WebhookRequest(method="POST", url="https://x", headers={}, query={}, body=b"{}")
    with pytest.raises(BadRequest):
        CHANNELS["sms"].events(request, account("sms"))


@pytest.mark.parametrize("fixture", ["send_response", "incoming_phone_numbers"])
def test_an_api_answer_is_not_a_webhook(fixture: str):
    with pytest.raises(BadRequest):
        events("sms", fixture)
