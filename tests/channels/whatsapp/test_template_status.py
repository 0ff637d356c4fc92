"""message_template_status_update: a signed delivery moves the template it names; a
forged or unsigned one is refused and changes nothing."""

from __future__ import annotations

from typing import Any

import httpx

from shared.db import Connection
from tests.channels.kit import post
from tests.channels.whatsapp.kit import WhatsAppKit
from tests.fixtures import raw
from tests.support import make_org, make_user

KIT = WhatsAppKit()


async def template(db: Connection, account: Any) -> None:
    await db.execute(
        "insert into whatsapp_templates (organization_id, channel_account_id,"
        " provider_template_id, name, language, category, status)"
        " values ($1, $2, '1234567890', 'order_update', 'en_US', 'UTILITY', 'PENDING'),"
        "        ($1, $2, '99', 'order_update', 'pt_BR', 'UTILITY', 'PENDING')",
        account.organization_id,
        account.id,
    )


async def states(db: Connection) -> dict[str, tuple[str, str | None]]:
    rows = await db.fetch("select language, status, status_reason from whatsapp_templates")
    return {r["language"]: (r["status"], r["status_reason"]) for r in rows}


async def test_a_signed_status_update_moves_the_template_it_names(
    client: httpx.AsyncClient, db: Connection
):
    account = await KIT.create_account(db, await make_org(db, await make_user(db)))
    bystander = await KIT.create_account(db, await make_org(db, await make_user(db)))
    await template(db, account)
    await template(db, bystander)

    rejected = KIT.signed_raw(account, raw("whatsapp", "template_status_rejected"))
    for refused in (KIT.forged(rejected), KIT.unsigned(rejected)):
        response = await post(client, KIT, account.id, refused)
        assert response.status_code == 401
    assert (await states(db))["en_US"] == ("PENDING", None)

    response = await post(client, KIT, account.id, rejected)
    assert response.status_code == 200, response.text
    rows = await db.fetch(
        "select channel_account_id, language, status, status_reason from whatsapp_templates"
        " order by channel_account_id = $1 desc, language",
        account.id,
    )
    assert [(r["language"], r["status"], r["status_reason"]) for r in rows[:2]] == [
        ("en_US", "REJECTED", "INCORRECT_CATEGORY"),
        ("pt_BR", "PENDING", None),  # another language of the same name: untouched
    ]
    # the other organization's template of the same id is not theirs to move
    assert [r["status"] for r in rows[2:]] == ["PENDING", "PENDING"]

    approved = KIT.signed_raw(account, raw("whatsapp", "template_status_update"))
    assert (await post(client, KIT, account.id, approved)).status_code == 200
    assert (await states(db))["en_US"] == ("APPROVED", None)
    event = await db.fetchrow(
        "select status, last_error from inbound_events"
        " where event_type = 'message_template_status_update' order by received_at desc limit 1"
    )
    assert event["status"] == "ignored"  # recorded, and nothing for the inbox to store


async def test_a_status_update_not_of_metas_shape_is_kept_failed_and_moves_nothing(
    client: httpx.AsyncClient, db: Connection
):
    account = await KIT.create_account(db, await make_org(db, await make_user(db)))
    await template(db, account)
    body = raw("whatsapp", "template_status_rejected").replace(
        b'"message_template_name": "order_update",', b""
    )
    response = await post(client, KIT, account.id, KIT.signed_raw(account, body))
    assert response.status_code == 200
    event = await db.fetchrow("select event_type, status, last_error from inbound_events")
    assert (event["event_type"], event["status"]) == ("malformed", "failed")
    assert "message_template_name" in event["last_error"]
    assert (await states(db))["en_US"] == ("PENDING", None)
