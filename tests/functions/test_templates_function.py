"""/functions/v1/templates: managers sync and submit WhatsApp templates as
themselves; any member renders a template or quick reply for a conversation."""

from __future__ import annotations

import httpx
import respx

from shared.db import Connection
from shared.settings import Settings
from tests.channels.kit import insert_account
from tests.fixtures import load
from tests.support import auth, make_contact, make_conversation, make_org, make_user, member

URL = "/functions/v1/templates"
WABA = "102290129340398"
TEMPLATES = f"https://graph.facebook.com/v21.0/{WABA}/message_templates"


@respx.mock
async def test_managers_sync_agents_and_strangers_cannot(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    owner = await make_user(db)
    org = await make_org(db, owner)
    manager, agent = await member(db, org, "manager"), await member(db, org, "agent")
    stranger = await member(db, await make_org(db, await make_user(db)), "admin")
    account = await insert_account(
        db, org, "whatsapp", "106540352242922", {"access_token": "EAAG-test"}, {"waba_id": WABA}
    )
    page = load("whatsapp", "templates_page_2")
    route = respx.get(url__startswith=TEMPLATES).mock(return_value=httpx.Response(200, json=page))
    body = {"channel_account_id": str(account.id)}
    as_agent = await client.post(f"{URL}/whatsapp/sync", json=body, headers=auth(settings, agent))
    assert as_agent.status_code == 403
    as_stranger = await client.post(
        f"{URL}/whatsapp/sync", json=body, headers=auth(settings, stranger)
    )
    assert as_stranger.status_code == 404
    assert not route.called
    synced = await client.post(f"{URL}/whatsapp/sync", json=body, headers=auth(settings, manager))
    assert synced.status_code == 200, synced.text
    assert synced.json() == {"synced": 2, "removed": 0}


async def test_a_quick_reply_is_rendered_for_the_conversation(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    owner = await make_user(db)
    org = await make_org(db, owner)
    agent = await member(db, org, "agent")
    teammate = await member(db, org, "agent")
    await db.execute("update profiles set full_name = 'Sam Agent' where id = $1", agent)
    await db.execute(
        "insert into custom_field_definitions (organization_id, entity, key, label, type)"
        " values ($1, 'contact', 'plan', 'Plan', 'text')",
        org,
    )
    contact = await make_contact(db, org, name="Kerry Ann", custom_fields={"plan": "Pro"})
    conversation = await make_conversation(db, org, contact=contact)
    reply = await db.fetchval(
        "insert into quick_replies (organization_id, shortcut, body) values ($1, '/hi',"
        " 'Hi {{ contact.first_name }}, {{ agent.name }} here about your {{ contact.custom.plan }}"
        ' plan{{ contact.custom.note | default("") }}.\') returning id',
        org,
    )
    mine = await db.fetchval(
        "insert into quick_replies (organization_id, owner_user_id, shortcut, body)"
        " values ($1, $2, '/mine', 'Mine') returning id",
        org,
        teammate,
    )
    base = {"conversation_id": str(conversation)}
    rendered = await client.post(
        f"{URL}/render", json=base | {"quick_reply_id": str(reply)}, headers=auth(settings, agent)
    )
    assert rendered.status_code == 200, rendered.text
    assert rendered.json() == {"text": "Hi Kerry, Sam Agent here about your Pro plan."}

    missing = await client.post(
        f"{URL}/render",
        json=base | {"body": "{{ contact.custom.tier }}"},
        headers=auth(settings, agent),
    )
    assert missing.status_code == 422
    assert "tier" in missing.json()["error"]["message"]
    # a teammate's own quick reply is theirs alone
    theirs = await client.post(
        f"{URL}/render", json=base | {"quick_reply_id": str(mine)}, headers=auth(settings, agent)
    )
    assert theirs.status_code == 404
    stranger = await member(db, await make_org(db, await make_user(db)), "owner")
    outsider = await client.post(
        f"{URL}/render", json=base | {"body": "Hi"}, headers=auth(settings, stranger)
    )
    assert outsider.status_code == 404
    both = await client.post(
        f"{URL}/render",
        json=base | {"body": "Hi", "quick_reply_id": str(reply)},
        headers=auth(settings, agent),
    )
    assert both.status_code == 422
