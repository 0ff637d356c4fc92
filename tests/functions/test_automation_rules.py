"""automation-rules: a signed WhatsApp message through the worker to a rule that assigns,
tags and sends a signed webhook; roles; refusals that save nothing; dry runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
import respx

from shared.db import Connection
from shared.events import worker
from shared.runtime import Runtime
from shared.settings import Settings
from tests.channels.kit import post
from tests.channels.whatsapp.kit import WhatsAppKit
from tests.fixtures import load
from tests.functions.test_send_template import IMAGE, with_templates
from tests.functions.webhooks_kit import HOOK, endpoint, public_dns, verified
from tests.shared.automation.kit import drain, make_rule, online, runs_of, team
from tests.support import (
    as_,
    auth,
    make_contact,
    make_conversation,
    make_org,
    make_user,
    member,
    principal,
)
from tests.support_crm import default_pipeline, define_field, make_tag, stages_of

KIT = WhatsAppKit()
RULES = "/functions/v1/automation-rules"


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> None:
    public_dns(monkeypatch)


@pytest.fixture
async def org(db: Connection) -> dict[str, UUID]:
    return await team(db, admin="admin", manager="manager", agent="agent", away="agent")


def rule_body(org: dict[str, UUID], **fields: Any) -> dict[str, Any]:
    return {
        "organization_id": str(org["org"]),
        "name": "Pricing questions",
        "trigger": "message.received",
        "actions": [{"type": "stop"}],
        **fields,
    }


async def test_a_whatsapp_message_is_assigned_tagged_and_sent_on_as_a_signed_webhook_retried(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    hook = await endpoint(client, settings, org, HOOK, ["deal.won"])  # nothing else to send
    pricing = await make_tag(db, org["org"], "pricing")
    await online(db, org["org"], org["agent"])
    await db.execute(
        "insert into public.member_availability (organization_id, user_id, availability)"
        " values ($1, $2, 'away')",
        org["org"],
        org["away"],
    )
    created = await client.post(
        RULES,
        json=rule_body(
            org,
            conditions={
                "message": {"field": "body", "op": "contains", "value": "PRICE"},
                "conversation": {"field": "status", "op": "eq", "value": "open"},
            },
            actions=[
                {"type": "assign", "method": "round_robin"},
                {"type": "add_tag", "tag_id": str(pricing)},
                {"type": "send_webhook", "endpoint_id": hook["id"]},
            ],
        ),
        headers=auth(settings, org["manager"]),
    )
    assert created.status_code == 201, created.text
    rule = created.json()

    account = await KIT.create_account(db, org["org"])
    with respx.mock(assert_all_called=False) as router:
        KIT.mock_provider(router)
        # The external system fails the first time, then takes the retry.
        route = router.post(HOOK)
        route.side_effect = [httpx.Response(500), httpx.Response(204)]
        for n, text in enumerate(("What is the price?", "Thanks")):
            message = KIT.text_message(
                account, sender="351912345678", message_id=f"wamid.P{n}", text=text
            )
            assert (await post(client, KIT, account.id, message)).status_code == 200
        await drain(runtime)
        assert route.call_count == 1  # the retry waits its turn
        later = await worker.run(runtime, now=datetime.now(UTC) + timedelta(minutes=1))
        assert later.processed == 1

    conversation = await db.fetchrow(
        "select id, assignee_id from public.conversations where organization_id = $1",
        org["org"],
    )
    assert conversation["assignee_id"] == org["agent"]  # the only agent online
    tagged = await db.fetchval(
        "select count(*) from public.conversation_tags where conversation_id = $1 and tag_id = $2",
        conversation["id"],
        pricing,
    )
    assert tagged == 1
    failed, call = route.calls  # one webhook, twice: the second message did not match
    assert failed.request.headers["webhook-id"] == call.request.headers["webhook-id"]
    body = verified(hook["secret"], call.request)
    assert body["type"] == "automation.webhook"
    assert body["data"]["rule"] == {"id": rule["id"], "name": "Pricing questions"}
    assert body["data"]["records"]["conversation"] == str(conversation["id"])

    runs = await client.get(f"{RULES}/{rule['id']}/runs", headers=auth(settings, org["agent"]))
    assert runs.status_code == 200
    latest, first = runs.json()["data"]
    assert (latest["status"], latest["matched"], latest["actions"]) == ("not_matched", False, [])
    assert first["status"] == "ran"
    assert [(a["type"], a["ok"]) for a in first["actions"]] == [
        ("assign", True),
        ("add_tag", True),
        ("send_webhook", True),
    ]


async def test_managers_edit_everyone_reads_and_other_organizations_see_nothing(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    agent, manager = auth(settings, org["agent"]), auth(settings, org["manager"])
    refused = await client.post(RULES, json=rule_body(org), headers=agent)
    assert refused.status_code == 403
    assert "manager" in refused.json()["error"]["message"]
    rule = (await client.post(RULES, json=rule_body(org), headers=manager)).json()
    listed = await client.get(RULES, params={"organization_id": str(org["org"])}, headers=agent)
    assert [r["id"] for r in listed.json()["data"]] == [rule["id"]]
    change = await client.patch(f"{RULES}/{rule['id']}", json={"enabled": False}, headers=agent)
    assert change.status_code == 403
    assert (await client.delete(f"{RULES}/{rule['id']}", headers=agent)).status_code == 403

    stranger = await make_user(db)
    other = await make_org(db, stranger)
    outside = auth(settings, stranger)
    assert (await client.get(f"{RULES}/{rule['id']}", headers=outside)).status_code == 404
    assert (await client.get(f"{RULES}/{rule['id']}/runs", headers=outside)).status_code == 404
    gone = await client.patch(f"{RULES}/{rule['id']}", json={"name": "x"}, headers=outside)
    assert gone.status_code == 404
    theirs = await client.get(RULES, params={"organization_id": str(org["org"])}, headers=outside)
    assert theirs.status_code == 404
    assert (
        await client.post(RULES, json=rule_body({"org": other}), headers=outside)
    ).status_code == 201

    renamed = await client.patch(
        f"{RULES}/{rule['id']}", json={"name": "Renamed", "enabled": False}, headers=manager
    )
    assert (renamed.json()["name"], renamed.json()["enabled"]) == ("Renamed", False)
    assert (await client.delete(f"{RULES}/{rule['id']}", headers=manager)).status_code == 204
    assert (
        await db.fetchval(
            "select count(*) from public.automation_rules where organization_id = $1", org["org"]
        )
        == 0
    )


async def test_bad_rules_are_refused_naming_the_problem_and_nothing_is_saved(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    manager = auth(settings, org["manager"])
    stranger = await make_user(db)
    other = await make_org(db, stranger)
    their_tag = await make_tag(db, other, "theirs")
    their_stage = next(iter((await stages_of(db, await default_pipeline(db, other))).values()))
    their_member = await member(db, other, "agent")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"trigger": "message.deleted"}, "unknown trigger"),
        ({"actions": [{"type": "explode"}]}, "explode"),
        (
            {"conditions": {"message": {"field": "nope", "op": "eq", "value": 1}}},
            "conditions.message",
        ),
        (
            {"conditions": {"deal": {"field": "title", "op": "eq", "value": "x"}}},
            "has no deal record",
        ),
        ({"actions": [{"type": "add_tag", "tag_id": str(their_tag)}]}, "actions[0].tag_id"),
        ({"actions": [{"type": "add_tag", "tag_id": str(uuid4())}]}, "no tag"),
        (
            {"actions": [{"type": "assign", "method": "user", "user_id": str(their_member)}]},
            "no member",
        ),
        ({"actions": [{"type": "assign", "method": "user"}]}, "user_id goes with method user"),
        (
            {
                "trigger": "deal.created",
                "actions": [{"type": "move_deal_stage", "stage_id": str(their_stage)}],
            },
            "no stage",
        ),
        ({"actions": [{"type": "move_deal_stage", "stage_id": str(their_stage)}]}, "needs a deal"),
        ({"actions": [{"type": "send_webhook", "endpoint_id": str(uuid4())}]}, "webhook endpoint"),
        (
            {"actions": [{"type": "set_custom_field", "key": "tier", "value": "gold"}]},
            "no contact custom field 'tier'",
        ),
    ]
    for change, expected in cases:
        answer = await client.post(RULES, json=rule_body(org, **change), headers=manager)
        assert answer.status_code == 422, (change, answer.text)
        assert expected in answer.text, (expected, answer.text)
    assert await db.fetchval("select count(*) from public.automation_rules") == 0

    # once the field exists the same rule is fine; a bad PATCH leaves it as it was
    await define_field(db, org["org"], "contact", "tier", "text")
    ok = rule_body(org, actions=[{"type": "set_custom_field", "key": "tier", "value": "gold"}])
    rule = (await client.post(RULES, json=ok, headers=manager)).json()
    assert rule["actions"][0]["key"] == "tier"
    foreign = [{"type": "add_tag", "tag_id": str(their_tag)}]
    bad = await client.patch(
        f"{RULES}/{rule['id']}", json={"name": "Changed", "actions": foreign}, headers=manager
    )
    assert bad.status_code == 422 and "actions[0].tag_id" in bad.text
    again = (await client.get(f"{RULES}/{rule['id']}", headers=manager)).json()
    assert (again["name"], again["actions"]) == ("Pricing questions", rule["actions"])


async def test_a_dry_run_evaluates_without_acting(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    vip = await make_tag(db, org["org"], "VIP")
    rule = (
        await client.post(
            RULES,
            json=rule_body(
                org,
                trigger="conversation.created",
                conditions={"contact": {"field": "tags", "op": "has_tag", "value": "vip"}},
                actions=[{"type": "set_conversation_status", "status": "pending"}],
            ),
            headers=auth(settings, org["manager"]),
        )
    ).json()
    plain = await make_conversation(db, org["org"])
    contact = await make_contact(db, org["org"])
    await db.execute(
        "insert into public.contact_tags (organization_id, contact_id, tag_id) values ($1, $2, $3)",
        org["org"],
        contact,
        vip,
    )
    tagged = await make_conversation(db, org["org"], contact=contact)
    agent = auth(settings, org["agent"])
    url = f"{RULES}/{rule['id']}/dry-run"
    no = (await client.post(url, json={"record_id": str(plain)}, headers=agent)).json()
    assert (no["matched"], no["conditions"], no["actions"]) == (False, {"contact": False}, [])
    yes = (await client.post(url, json={"record_id": str(tagged)}, headers=agent)).json()
    assert yes["matched"] is True
    assert yes["actions"] == [
        {"type": "set_conversation_status", "status": "pending", "applies_to": "conversation"}
    ]
    assert (
        await db.fetchval("select status::text from public.conversations where id = $1", tagged)
        == "open"
    )
    missing = await client.post(url, json={"record_id": str(uuid4())}, headers=agent)
    assert missing.status_code == 404
    wrong = await client.post(url, json={"record_id": str(tagged), "entity": "deal"}, headers=agent)
    assert wrong.status_code == 422 and "entity" in wrong.text


async def test_agents_set_their_availability_managers_capacity_admins_reassignment(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    members = "/functions/v1/members"
    o = str(org["org"])
    agent = auth(settings, org["agent"])
    mine = await client.post(
        f"{members}/availability",
        json={"organization_id": o, "availability": "online"},
        headers=agent,
    )
    assert mine.status_code == 200 and mine.json()["availability"] == "online"
    bad = await client.post(
        f"{members}/availability",
        json={"organization_id": o, "availability": "busy"},
        headers=agent,
    )
    assert bad.status_code == 422
    capacity = f"{members}/{org['agent']}/capacity"
    assert (
        await client.put(capacity, json={"organization_id": o, "capacity": 3}, headers=agent)
    ).status_code == 403
    set_ = await client.put(
        capacity, json={"organization_id": o, "capacity": 3}, headers=auth(settings, org["manager"])
    )
    assert set_.status_code == 200 and set_.json()["capacity"] == 3, set_.text
    setting = {"organization_id": o, "reassign_unavailable": "balanced"}
    refused = await client.put(
        f"{members}/assignment", json=setting, headers=auth(settings, org["manager"])
    )
    assert refused.status_code == 403
    done = await client.put(
        f"{members}/assignment", json=setting, headers=auth(settings, org["admin"])
    )
    assert done.status_code == 200 and done.json()["reassign_unavailable"] == "balanced"
    # nobody sets another member's availability, even a manager (the table's trigger)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="their own availability"):
        await as_(
            runtime,
            principal(org["manager"]),
            "update public.member_availability set availability = 'offline' where user_id = $1",
            org["agent"],
        )
    row = await db.fetchrow(
        "select availability, capacity from public.member_availability where user_id = $1",
        org["agent"],
    )
    assert (row["availability"], row["capacity"]) == ("online", 3)


async def test_a_rule_written_past_the_function_is_refused_on_edit_and_skipped_when_run(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    # a manager may write the row through PostgREST, where nothing checks its actions
    bogus = await make_rule(db, org["org"], "contact.created", [{"type": "launch", "x": 1}])
    manager = auth(settings, org["manager"])
    edit = await client.patch(f"{RULES}/{bogus}", json={"name": "Fixed?"}, headers=manager)
    assert edit.status_code == 422 and "actions[0]" in edit.text
    await make_contact(db, org["org"])
    await drain(runtime)
    (run,) = await runs_of(db, bogus)
    assert run["status"] == "skipped" and run["reason"].startswith("invalid rule: actions[0]")


async def test_a_rule_answers_with_an_approved_whatsapp_template(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    account = await KIT.create_account(db, org["org"])
    greeting = {"name": "order_update", "language": "en_US"}
    unknown = rule_body(
        org, actions=[{"type": "send_message", "template": {**greeting, "name": "nope"}}]
    )
    refused = await client.post(RULES, json=unknown, headers=auth(settings, org["manager"]))
    assert refused.status_code == 422
    assert "no WhatsApp template nope (en_US)" in refused.text
    both = rule_body(org, actions=[{"type": "send_message", "text": "Hi", "template": greeting}])
    assert (
        await client.post(RULES, json=both, headers=auth(settings, org["manager"]))
    ).status_code == 422
    assert await db.fetchval("select count(*) from public.automation_rules") == 0

    await with_templates(db, {"org": org["org"], "account": account})
    values = {"header": IMAGE, "body": ["Kerry", "A-1001"]}
    rule = rule_body(org, actions=[{"type": "send_message", "template": greeting | values}])
    created = await client.post(RULES, json=rule, headers=auth(settings, org["manager"]))
    assert created.status_code == 201, created.text
    with respx.mock(assert_all_called=False) as router:
        KIT.mock_provider(router)
        send = router.post(url__regex=r"^https://graph\.facebook\.com/v[\d.]+/\d+/messages$")
        send.respond(200, json=load("whatsapp", "send_text_response"))
        message = KIT.text_message(account, sender="351912345678", message_id="wamid.T", text="Hi")
        assert (await post(client, KIT, account.id, message)).status_code == 200
        await drain(runtime)
    sent = json.loads(send.calls.last.request.content)
    assert (sent["type"], sent["template"]["name"]) == ("template", "order_update")
    body = await db.fetchval(
        "select body from public.messages where content_type = 'template' and status = 'sent'"
    )
    assert body == "Hi Kerry, your order A-1001 ships today."


async def test_without_a_token_or_with_a_forged_one_nothing_is_saved(
    client: httpx.AsyncClient, db: Connection, org: dict[str, UUID]
):
    forged = {"Authorization": "Bearer not.a.jwt"}
    assert (await client.post(RULES, json=rule_body(org))).status_code == 401
    assert (await client.post(RULES, json=rule_body(org), headers=forged)).status_code == 401
    saved = "select count(*) from public.automation_rules where organization_id = $1"
    assert await db.fetchval(saved, org["org"]) == 0


async def test_managers_reorder_rules_in_one_call_and_a_tag_rule_dry_runs_with_its_tag(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    manager, agent = auth(settings, org["manager"]), auth(settings, org["agent"])
    vip = await make_tag(db, org["org"], "VIP")
    ids = []
    for name in ("first", "second"):
        body = rule_body(
            org,
            name=name,
            trigger="conversation.tag_added",
            conditions={"tag": {"field": "name", "op": "eq", "value": "VIP"}},
        )
        ids.append((await client.post(RULES, json=body, headers=manager)).json()["id"])
    order = {"organization_id": str(org["org"]), "rule_ids": ids[::-1]}
    assert (await client.put(f"{RULES}/order", json=order, headers=agent)).status_code == 403
    done = await client.put(f"{RULES}/order", json=order, headers=manager)
    assert [r["name"] for r in done.json()["data"]] == ["second", "first"]
    stray = str(uuid4())
    bad = await client.put(
        f"{RULES}/order", json={**order, "rule_ids": [ids[0], stray]}, headers=manager
    )
    assert bad.status_code == 422 and stray in bad.text and ids[1] in bad.text
    outside = await make_user(db)
    await make_org(db, outside)
    assert (
        await client.put(f"{RULES}/order", json=order, headers=auth(settings, outside))
    ).status_code == 404
    listed = await client.get(RULES, params={"organization_id": str(org["org"])}, headers=agent)
    assert [r["name"] for r in listed.json()["data"]] == ["second", "first"]

    conversation = await make_conversation(db, org["org"])
    url = f"{RULES}/{ids[0]}/dry-run"
    tried = await client.post(
        url, json={"record_id": str(conversation), "payload": {"tag_id": str(vip)}}, headers=agent
    )
    assert tried.status_code == 200 and tried.json()["matched"] is True, tried.text
    untagged = await client.post(url, json={"record_id": str(conversation)}, headers=agent)
    assert untagged.status_code == 422 and "payload.tag_id" in untagged.text
