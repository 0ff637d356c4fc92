"""Mailgun route forwards (form fields) and event webhooks (JSON), parsed without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from uuid import UUID

import pytest

from shared.channels.base import Ignored, InboundMessage, StatusUpdate
from shared.channels.registry import CHANNELS
from shared.errors import BadRequest
from tests.channels.parsing import account, events, only
from tests.fixtures import load

KERRY = "kerry.fisher@fastmail.example"
FIRST = "CAKx7Vb3qP2nN1hZf0Q8sYp1eXk2vW9uT@mail.fastmail.example"
OURS = "20261125093412.7f3c2e1d9a8b4c60@mg.northwind.example"


def test_a_mail_is_a_message_from_its_author_in_its_own_thread():
    mail = only("email", "inbound_message")
    assert isinstance(mail, InboundMessage)
    assert mail.provider_message_id == FIRST
    assert mail.sender.model_dump(exclude_none=True) == {
        "external_id": KERRY,  # addresses are matched lower-case
        "name": "Kerry Fisher",
        "email": "Kerry.Fisher@Fastmail.example",
    }
    assert (mail.content_type, mail.body) == (
        "text",
        "Hi!\n\nDo you ship to Lisbon? I would like to order the blue armchair.",
    )
    assert mail.thread.model_dump() == {
        "key": FIRST,
        "subject": "Do you ship to Lisbon?",
        "references": [],
    }
    assert mail.occurred_at == datetime(2026, 11, 25, 9, 14, 3, tzinfo=UTC)
    assert mail.metadata["html"].startswith('<div dir="ltr">Hi!')
    assert mail.metadata["recipient"] == "support@mg.northwind.example"


def test_a_reply_names_what_it_answers():
    reply = only("email", "inbound_reply")
    assert reply.body == "Great, please send me the invoice."
    assert reply.metadata["reply_to"] == OURS
    assert reply.metadata["references"] == [FIRST, OURS]
    assert reply.metadata["subject"] == "Re: Do you ship to Lisbon?"


def test_a_stored_mails_attachments_point_at_mailgun_storage():
    [attachment] = only("email", "inbound_stored").attachments
    assert (attachment.type, attachment.filename, attachment.mime_type, attachment.size) == (
        "document",
        "company-registration.pdf",
        "application/pdf",
        48213,
    )
    assert attachment.url.startswith("https://storage-europe-west1.api.mailgun.net/v3/")


def test_inline_images_are_mapped_to_their_parts():
    mail = only("email", "inbound_with_attachments")
    assert mail.metadata["content_ids"] == {"<ii_m3x9k2a70>": "attachment-1"}
    assert mail.body.endswith("[image: seam.jpg]")


def test_a_mail_is_one_event_keyed_by_its_message_id():
    [event] = events("email", "inbound_message")
    assert (event.provider_event_id, event.event_type) == (f"message:{FIRST}", "message")


@pytest.mark.parametrize(
    ("fixture", "status"),
    [
        ("event_accepted", "sent"),
        ("event_delivered", "delivered"),
        ("event_opened", "read"),
        ("event_failed", "failed"),
    ],
)
def test_events_of_our_mails_are_statuses(fixture: str, status: str):
    update = only("email", fixture)
    assert isinstance(update, StatusUpdate)
    assert (update.provider_message_id, update.status) == (OURS, status)
    [event] = events("email", fixture)
    assert event.provider_event_id == f"event:{load('email', fixture)['event-data']['id']}"


def test_a_permanent_failure_carries_the_bounce():
    error = only("email", "event_failed").error
    assert (error["code"], error["reason"]) == (550, "bounce")
    assert "User unknown" in error["message"]


@pytest.mark.parametrize(
    ("fixture", "reason"),
    [
        ("event_clicked", "clicked events are not used"),
        ("event_complained", "complained events are not used"),
        (
            "event_failed_temporary",
            "a temporary failure, Mailgun retries:"
            " 4.2.2 <kerry.fisher@fastmail.example>: Mailbox full",
        ),
    ],
)
def test_what_the_inbox_does_not_use_is_ignored(fixture: str, reason: str):
    assert only("email", fixture) == Ignored(reason=reason)


def test_an_event_of_a_mail_another_inbox_sent_is_ignored():
    [event] = events("email", "event_delivered")
    other = replace(account("email"), id=UUID(int=7))
    assert CHANNELS["email"].parse(event, other) == Ignored(reason="mail not sent from this inbox")


@pytest.mark.parametrize("fixture", ["send_response", "route_created", "domain"])
def test_an_api_answer_is_not_a_webhook(fixture: str):
    with pytest.raises(BadRequest):
        events("email", fixture)
