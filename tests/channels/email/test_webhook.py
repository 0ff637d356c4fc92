"""Mailgun's own deliveries — route forwards and event webhooks — through the real
webhook into the database."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode
from uuid import UUID

import httpx
import pytest

from shared.channels.email.parse import ACCOUNT_VARIABLE
from shared.db import Connection
from shared.settings import Settings
from tests.channels.email.kit import EmailKit, mail_fields
from tests.channels.kit import Account, Delivery, counts, post
from tests.fixtures import load
from tests.support import make_org, make_user

KIT = EmailKit()
FIRST = "CAKx7Vb3qP2nN1hZf0Q8sYp1eXk2vW9uT@mail.fastmail.example"  # inbound_message
OURS = "20261125093412.7f3c2e1d9a8b4c60@mg.northwind.example"  # our reply (send_response)
REPLY = "CAKx7Vb3qP2nN1hZf0Q8sYp1eXk2vW9uU@mail.fastmail.example"  # inbound_reply
KERRY = "kerry.fisher@fastmail.example"


@pytest.fixture
async def account(db: Connection) -> Account:
    return await KIT.create_account(db, await make_org(db, await make_user(db)))


async def deliver(
    client: httpx.AsyncClient, account: Account, delivery: Delivery
) -> httpx.Response:
    return await post(client, KIT, account.id, delivery)


def forward(account: Account, fixture: str, *, age: float = 0, **changes: Any) -> Delivery:
    return KIT.form(account, mail_fields(load("email", fixture), **changes), age=age)


def event(account: Account, fixture: str, *, ours: bool = True, age: float = 0) -> Delivery:
    data = load("email", fixture)["event-data"]
    data["user-variables"] = {ACCOUNT_VARIABLE: str(account.id)} if ours else {}
    return KIT.event(account, data, age=age)


async def multipart(
    client: httpx.AsyncClient, account: Account, fields: dict[str, str], files: list[Any]
) -> httpx.Response:
    """A forward of a mail with attachments: multipart, its files as attachment-N parts."""
    signed = {**fields, **KIT.signature(account.secrets["webhook_signing_key"])}
    return await client.post(f"/functions/v1/email-webhook/{account.id}", data=signed, files=files)


async def our_reply(db: Connection, account: Account, provider_message_id: str = OURS) -> UUID:
    """Our reply in the conversation of the customer's first mail, as send-message records it."""
    message: UUID = await db.fetchval(
        "insert into messages (organization_id, conversation_id, channel_account_id, direction,"
        " sender_type, body, status, provider_message_id)"
        " select organization_id, id, channel_account_id, 'outbound', 'user',"
        " 'We do! Delivery to Lisbon takes 2 days.', 'sent', $2 from conversations"
        " where channel_account_id = $1 returning id",
        account.id,
        provider_message_id,
    )
    return message


async def test_a_new_mail_starts_a_conversation_keyed_by_its_message_id(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    response = await deliver(client, account, forward(account, "inbound_message"))
    assert response.json()["processed"] == 1, response.text
    message = await db.fetchrow(
        "select content_type::text, body, provider_message_id, metadata, created_at from messages"
    )
    assert message["content_type"] == "text"
    assert message["body"] == (
        "Hi!\n\nDo you ship to Lisbon? I would like to order the blue armchair."
    ), "the stripped text, without the signature block"
    assert message["provider_message_id"] == FIRST
    assert message["created_at"] == datetime(2026, 11, 25, 9, 14, 3, tzinfo=UTC)  # its Date
    metadata = message["metadata"]
    assert metadata["subject"] == "Do you ship to Lisbon?"
    assert metadata["message_id"] == FIRST
    assert metadata["html"].startswith('<div dir="ltr">Hi!')
    assert metadata["to"] == "Northwind Support <support@mg.northwind.example>"
    assert not {"reply_to", "references", "auto_submitted"} & set(metadata)
    conversation = await db.fetchrow("select thread_key, subject, unread_count from conversations")
    assert dict(conversation) == {
        "thread_key": FIRST,
        "subject": "Do you ship to Lisbon?",
        "unread_count": 1,
    }
    contact = await db.fetchrow(
        "select c.name, c.email, c.phone, i.channel::text, i.external_id from contacts c"
        " join contact_identities i on i.contact_id = c.id"
    )
    assert dict(contact) == {
        "name": "Kerry Fisher",
        "email": KERRY,  # lower-cased, as contacts are matched on it
        "phone": None,
        "channel": "email",
        "external_id": KERRY,
    }


async def test_a_reply_to_our_mail_joins_and_reopens_its_conversation(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    await deliver(client, account, forward(account, "inbound_message"))
    await our_reply(db, account)
    await db.execute("update conversations set status = 'resolved'")

    response = await deliver(client, account, forward(account, "inbound_reply"))
    assert response.json()["processed"] == 1, response.text
    conversation = await db.fetchrow("select status::text, unread_count from conversations")
    assert dict(conversation) == {"status": "open", "unread_count": 2}
    reply = await db.fetchrow(
        "select body, metadata from messages where provider_message_id = $1", REPLY
    )
    assert reply["body"] == "Great, please send me the invoice.", "the quoted history is stripped"
    assert reply["metadata"]["reply_to"] == OURS
    assert reply["metadata"]["references"] == [FIRST, OURS]
    assert reply["metadata"]["html"].count("gmail_quote") == 1, "the whole HTML is kept"
    assert (await counts(db))["messages"] == 3


async def test_a_new_subject_from_the_same_sender_is_a_new_conversation(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    await deliver(client, account, forward(account, "inbound_message"))
    other = forward(
        account,
        "inbound_message",
        headers={"Message-Id": "<CAKx7Vb3-other@mail.fastmail.example>", "Subject": "Invoice"},
        subject="Invoice",
    )
    assert (await deliver(client, account, other)).json()["processed"] == 1
    rows = await db.fetch("select thread_key, subject from conversations order by created_at")
    assert [(r["thread_key"], r["subject"]) for r in rows] == [
        (FIRST, "Do you ship to Lisbon?"),
        ("CAKx7Vb3-other@mail.fastmail.example", "Invoice"),
    ]
    assert (await counts(db))["contacts"] == 1


async def test_replies_whose_references_are_unknown_share_a_thread_keyed_by_its_root(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    # The thread began before the inbox was connected: neither FIRST nor OURS is stored.
    await deliver(client, account, forward(account, "inbound_reply"))
    later = forward(
        account,
        "inbound_reply",
        headers={
            "Message-Id": "<CAKx7Vb3-later@mail.fastmail.example>",
            "In-Reply-To": "<elsewhere-2@mg.northwind.example>",
            "References": f"<{FIRST}> <{OURS}> <elsewhere-2@mg.northwind.example>",
        },
    )
    assert (await deliver(client, account, later)).json()["processed"] == 1
    assert await db.fetchval("select array_agg(thread_key) from conversations") == [FIRST]
    assert (await counts(db))["messages"] == 2


async def test_a_reply_into_a_resolved_conversation_of_a_thread_open_elsewhere_joins_that(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    await deliver(client, account, forward(account, "inbound_reply"))  # keyed by FIRST
    await db.execute("update conversations set status = 'resolved'")
    to_root = forward(
        account,
        "inbound_reply",
        headers={"Message-Id": "<to-root@mail.fastmail.example>", "References": f"<{FIRST}>"},
    )
    await deliver(client, account, to_root)  # a second conversation of FIRST's thread
    to_resolved = forward(
        account,
        "inbound_reply",
        headers={
            "Message-Id": "<to-resolved@mail.fastmail.example>",
            "In-Reply-To": f"<{REPLY}>",
            "References": f"<{FIRST}> <{REPLY}>",
        },
    )
    response = await deliver(client, account, to_resolved)
    assert response.json()["processed"] == 1, response.text
    rows = await db.fetch(
        "select c.status::text, array_agg(m.provider_message_id order by m.provider_message_id)"
        " as ids"
        " from conversations c join messages m on m.conversation_id = c.id"
        " group by c.id, c.status order by c.status"
    )
    assert [(r["status"], r["ids"]) for r in rows] == [
        ("open", ["to-resolved@mail.fastmail.example", "to-root@mail.fastmail.example"]),
        ("resolved", [REPLY]),
    ]


async def test_attachments_are_kept_as_references_and_large_mails_are_taken(
    client: httpx.AsyncClient, account: Account, db: Connection, settings: Settings
):
    photo, note = b"\xff\xd8\xff\xe0" + bytes(40_000), b"%PDF-1.7\n" + bytes(1_500_000)
    assert len(note) > settings.max_body_bytes, "more than other functions accept"
    response = await multipart(
        client,
        account,
        load("email", "inbound_with_attachments"),
        [
            ("attachment-1", ("seam.jpg", photo, "image/jpeg")),
            ("attachment-2", ("delivery-note.pdf", note, "application/pdf")),
        ],
    )
    assert response.json()["processed"] == 1, response.text
    message = await db.fetchrow(
        "select content_type::text, body, attachments, metadata from messages"
    )
    assert message["content_type"] == "text"
    assert message["body"].startswith("The armchair arrived with a torn seam")
    assert message["attachments"] == [
        {
            "type": "image",
            "media_id": None,
            "url": None,
            "mime_type": "image/jpeg",
            "filename": "seam.jpg",
            "caption": None,
            "size": len(photo),
        },
        {
            "type": "document",
            "media_id": None,
            "url": None,
            "mime_type": "application/pdf",
            "filename": "delivery-note.pdf",
            "caption": None,
            "size": len(note),
        },
    ]
    assert message["metadata"]["content_ids"] == {"<ii_m3x9k2a70>": "attachment-1"}


async def test_a_mail_with_an_html_body_over_a_megabyte_is_taken_whole(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    html = "<table>" + "<tr><td>Armchair, blue</td><td>1</td></tr>" * 30_000 + "</table>"
    assert len(html) > 1024 * 1024  # a form field over Starlette's default part limit
    response = await deliver(
        client, account, forward(account, "inbound_message", **{"body-html": html})
    )
    assert response.json()["processed"] == 1, response.text
    assert await db.fetchval("select metadata ->> 'html' from messages") == html


async def test_every_html_part_is_kept_and_an_automatic_answer_is_marked(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    fields = mail_fields(
        load("email", "inbound_message"), headers={"Auto-Submitted": "auto-replied"}
    )
    signed = {**fields, **KIT.signature(account.secrets["webhook_signing_key"])}
    pairs = [*signed.items(), ("body-html", "<p>Second part</p>")]  # one field per part
    delivery = Delivery(
        urlencode(pairs).encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert (await deliver(client, account, delivery)).json()["processed"] == 1
    metadata = await db.fetchval("select metadata from messages")
    assert metadata["html"] == f"{fields['body-html']}\n<p>Second part</p>"
    assert metadata["auto_submitted"] == "auto-replied"


async def test_a_mail_of_attachments_only_takes_the_first_ones_type(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    fields = {**load("email", "inbound_with_attachments"), "body-plain": "", "stripped-text": ""}
    photo = ("attachment-1", ("seam.jpg", b"\xff\xd8\xff\xe0", "image/jpeg"))
    assert (await multipart(client, account, fields, [photo])).json()["processed"] == 1
    message = await db.fetchrow("select content_type::text, body from messages")
    assert dict(message) == {"content_type": "image", "body": None}


async def test_a_store_notification_gives_its_attachments_by_url(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    assert (await deliver(client, account, forward(account, "inbound_stored"))).json()[
        "processed"
    ] == 1
    attachment = (await db.fetchval("select attachments from messages"))[0]
    assert attachment["url"].startswith("https://storage-europe-west1.api.mailgun.net/v3/")
    assert (attachment["type"], attachment["filename"], attachment["size"]) == (
        "document",
        "company-registration.pdf",
        48213,
    )


async def test_without_stripped_text_the_whole_plain_body_is_the_message(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    await deliver(client, account, forward(account, "inbound_reply", **{"stripped-text": ""}))
    body = await db.fetchval("select body from messages")
    assert body.startswith("Great, please send me the invoice.\n\nOn Wed, 25 Nov 2026")


async def test_a_mail_without_message_id_is_still_stored_once(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    fields = load("email", "inbound_message")
    fields.pop("Message-Id")
    fields["message-headers"] = json.dumps(
        [h for h in json.loads(fields["message-headers"]) if h[0] != "Message-Id"]
    )
    for _ in range(2):  # Mailgun's retry comes signed anew
        await deliver(client, account, KIT.form(account, fields))
    assert (await counts(db))["messages"] == 1
    assert (await db.fetchval("select provider_message_id from messages")).endswith(
        "@no-message-id"
    )


async def test_an_email_sender_joins_the_contact_with_that_address(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    existing = await db.fetchval(
        "insert into contacts (organization_id, name, email, phone)"
        " values ($1, 'Kerry (CRM)', $2, '+16315551181') returning id",
        account.organization_id,
        KERRY,
    )
    await deliver(client, account, forward(account, "inbound_message"))  # From: Kerry.Fisher@…
    assert (await counts(db))["contacts"] == 1
    assert await db.fetchval("select contact_id from contact_identities") == existing
    assert await db.fetchval("select name from contacts") == "Kerry (CRM)"


async def test_mail_from_the_inbox_address_itself_is_not_a_customer(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    loop = forward(
        account,
        "inbound_message",
        headers={"From": "Northwind Support <Support@mg.northwind.example>"},
        **{"from": "Northwind Support <Support@mg.northwind.example>"},
    )
    assert (await deliver(client, account, loop)).json()["ignored"] == 1
    assert (await counts(db))["contacts"] == 0


# ---- delivery events ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "status", "stamp"),
    [
        ("event_accepted", "sent", "sent_at"),
        ("event_delivered", "delivered", "delivered_at"),
        ("event_opened", "read", "read_at"),
    ],
)
async def test_each_delivery_event_moves_our_mail_on(
    client: httpx.AsyncClient,
    account: Account,
    db: Connection,
    fixture: str,
    status: str,
    stamp: str,
):
    await deliver(client, account, forward(account, "inbound_message"))
    message = await our_reply(db, account)
    response = await deliver(client, account, event(account, fixture))
    assert response.json()["processed"] == 1, response.text
    row = await db.fetchrow(
        f"select status::text, {stamp} as at from messages where id = $1", message
    )
    occurred = datetime.fromtimestamp(load("email", fixture)["event-data"]["timestamp"], UTC)
    assert (row["status"], row["at"]) == (status, occurred)


async def test_a_permanent_failure_fails_our_mail_with_mailguns_reason(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    await deliver(client, account, forward(account, "inbound_message"))
    message = await our_reply(db, account)
    await deliver(client, account, event(account, "event_failed"))
    row = await db.fetchrow("select status::text, error from messages where id = $1", message)
    assert row["status"] == "failed"
    assert row["error"] == {
        "code": 550,
        "message": f"5.1.1 <{KERRY}>: Recipient address rejected: User unknown",
        "reason": "bounce",
        "severity": "permanent",
    }


async def test_a_temporary_failure_is_acknowledged_and_not_final(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    await deliver(client, account, forward(account, "inbound_message"))
    message = await our_reply(db, account)
    response = await deliver(client, account, event(account, "event_failed_temporary"))
    assert response.json()["ignored"] == 1
    assert await db.fetchval("select status::text from messages where id = $1", message) == "sent"
    await deliver(client, account, event(account, "event_delivered"))  # Mailgun's retry worked
    assert (
        await db.fetchval("select status::text from messages where id = $1", message) == "delivered"
    )


@pytest.mark.parametrize("fixture", ["event_clicked", "event_complained"])
async def test_events_the_inbox_does_not_use_are_acknowledged(
    client: httpx.AsyncClient, account: Account, db: Connection, fixture: str
):
    response = await deliver(client, account, event(account, fixture))
    assert response.status_code == 200
    assert response.json()["ignored"] == 1
    assert await db.fetchval("select status from inbound_events") == "ignored"


async def test_an_unknown_event_is_logged_and_acknowledged(
    client: httpx.AsyncClient, account: Account, db: Connection, caplog: pytest.LogCaptureFixture
):
    data = load("email", "event_delivered")["event-data"] | {"event": "list_member_uploaded"}
    with caplog.at_level(logging.WARNING, logger="connectgain.channels.email"):
        response = await deliver(client, account, KIT.event(account, data))
    assert response.json()["ignored"] == 1
    assert "list_member_uploaded" in caplog.text


@pytest.mark.parametrize("fixture", ["event_delivered", "event_failed", "event_opened"])
async def test_events_of_mail_not_sent_from_this_inbox_are_ignored(
    client: httpx.AsyncClient, account: Account, db: Connection, fixture: str
):
    """The domain's webhooks report all its mail, e.g. another inbox's or a newsletter's."""
    await deliver(client, account, forward(account, "inbound_message"))
    message = await our_reply(db, account)
    response = await deliver(client, account, event(account, fixture, ours=False))
    assert response.json()["ignored"] == 1
    assert await db.fetchval("select status::text from messages where id = $1", message) == "sent"


# ---- signatures ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["forward", "event"])
# Margins of seconds either side of 5 minutes: the timestamp is whole seconds and a
# delivery takes a moment, so 301 s ahead was accepted whenever the two added up to 1 s.
@pytest.mark.parametrize(("age", "accepted"), [(310, False), (-310, False), (290, True)])
async def test_a_timestamp_more_than_5_minutes_off_is_refused_and_nothing_stored(
    client: httpx.AsyncClient,
    account: Account,
    db: Connection,
    kind: str,
    age: float,
    accepted: bool,
):
    delivery = (
        forward(account, "inbound_message", age=age)
        if kind == "forward"
        else event(account, "event_clicked", age=age)
    )
    response = await deliver(client, account, delivery)
    if accepted:
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "invalid_signature",
        "message": "The Mailgun signature's timestamp is more than 5 minutes off",
    }
    assert set((await counts(db)).values()) == {0}
    assert await db.fetchval("select count(*) from private.webhook_nonces") == 0


async def test_a_token_seen_before_is_refused_whatever_it_signs(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    first = forward(account, "inbound_message")
    assert (await deliver(client, account, first)).status_code == 200
    seen = {
        k: v for k, v in parse_qsl(first.body.decode()) if k in ("timestamp", "token", "signature")
    }
    other_mail = urlencode({**load("email", "inbound_reply"), **seen}).encode()
    other_event = json.dumps(
        {"signature": seen, "event-data": load("email", "event_clicked")["event-data"]}
    ).encode()
    for replay in (
        Delivery(other_mail, first.headers),
        Delivery(other_event, {"Content-Type": "application/json"}),
    ):
        response = await deliver(client, account, replay)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_signature"
    assert await counts(db) == {
        "inbound_events": 1,
        "contacts": 1,
        "contact_identities": 1,
        "conversations": 1,
        "messages": 1,
    }


async def test_a_body_whose_signature_cannot_be_found_is_a_400_and_nothing_is_stored(
    client: httpx.AsyncClient, account: Account, db: Connection
):
    for delivery in KIT.unverifiable():
        response = await post(client, KIT, account.id, delivery)
        assert response.status_code == 400, delivery.body
        assert response.json()["error"]["code"] == "bad_request"
    assert set((await counts(db)).values()) == {0}
