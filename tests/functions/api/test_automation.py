"""/v1/automation-rules: write keys edit and reorder rules, read keys read and dry-run them,
bad input is a 422 naming the problem that saves nothing, another organization's rules are
not found, and a rule a key made runs and sends as the member who issued the key."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import httpx

from shared.db import Connection
from shared.runtime import Runtime
from tests.functions.api.conftest import Tenant, error_of
from tests.shared.automation.kit import drain
from tests.support import as_, make_contact, member, principal
from tests.support_crm import make_tag

RULES = "/v1/automation-rules"


def rule(**fields: Any) -> dict[str, Any]:
    return {"name": "Rule", "trigger": "contact.created", "actions": [{"type": "stop"}], **fields}


async def count(db: Connection, org: UUID) -> int:
    n: int = await db.fetchval(
        "select count(*) from public.automation_rules where organization_id = $1", org
    )
    return n


async def test_write_keys_edit_rules_read_keys_read_them_and_runs_follow(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, runtime: Runtime, db: Connection
):
    vip = await make_tag(db, tenant.org, "VIP")
    body = rule(
        name="Tag new contacts",
        conditions={"contact": {"field": "name", "op": "contains", "value": "Ada"}},
        actions=[{"type": "add_tag", "tag_id": str(vip)}],
    )
    assert (
        await api.post(RULES, json=body, headers=tenant.headers(read_only=True))
    ).status_code == 403
    made = await api.post(RULES, json=body, headers=tenant.headers())
    assert made.status_code == 201, made.text
    created = made.json()
    # the author is the member who issued the key, whatever the caller says
    assert created["created_by"] == str(tenant.owner) and created["position"] == 0
    read = tenant.headers(read_only=True)
    assert (await api.get(f"{RULES}/{created['id']}", headers=read)).json()["name"] == body["name"]
    assert [r["id"] for r in (await api.get(RULES, headers=read)).json()["data"]] == [created["id"]]
    catalog = (await api.get(f"{RULES}/triggers", headers=read)).json()
    assert "contact.tag_added" in {t["name"] for t in catalog["data"]}

    # the events worker runs it; its runs are read through the API
    ada = await make_contact(db, tenant.org, name="Ada Lovelace")
    await drain(runtime)
    assert await db.fetchval("select count(*) from contact_tags where contact_id = $1", ada) == 1
    runs = (await api.get(f"{RULES}/{created['id']}/runs", headers=read)).json()["data"]
    assert [(r["status"], r["actions"][0]["ok"]) for r in runs] == [("ran", True)]

    patched = await api.patch(
        f"{RULES}/{created['id']}", json={"enabled": False}, headers=tenant.headers()
    )
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert (
        await api.patch(f"{RULES}/{created['id']}", json={"enabled": True}, headers=read)
    ).status_code == 403

    # another organization's key finds nothing of it, and changes nothing
    theirs = other.headers()
    for answer in (
        await api.get(f"{RULES}/{created['id']}", headers=theirs),
        await api.get(f"{RULES}/{created['id']}/runs", headers=theirs),
        await api.patch(f"{RULES}/{created['id']}", json={"name": "x"}, headers=theirs),
        await api.delete(f"{RULES}/{created['id']}", headers=theirs),
        await api.post(
            f"{RULES}/{created['id']}/dry-run", json={"record_id": str(ada)}, headers=theirs
        ),
    ):
        assert answer.status_code == 404, answer.text
    assert (await api.get(RULES, headers=theirs)).json()["data"] == []

    assert (await api.delete(f"{RULES}/{created['id']}", headers=read)).status_code == 403
    assert (
        await api.delete(f"{RULES}/{created['id']}", headers=tenant.headers())
    ).status_code == 204
    assert await count(db, tenant.org) == 0


async def test_bad_rules_through_the_api_are_refused_naming_the_problem(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    theirs = await make_tag(db, other.org, "theirs")
    cases: list[tuple[dict[str, Any], str]] = [
        (rule(trigger="contact.exploded"), "unknown trigger"),
        (rule(actions=[{"type": "launch"}]), "launch"),
        (rule(actions=[]), "actions"),
        (
            rule(conditions={"contact": {"field": "nope", "op": "eq", "value": 1}}),
            "conditions.contact",
        ),
        (rule(conditions={"deal": {"field": "title", "op": "eq", "value": "x"}}), "no deal record"),
        (rule(actions=[{"type": "add_tag", "tag_id": str(theirs)}]), "actions[0].tag_id"),
        (rule(actions=[{"type": "send_webhook", "endpoint_id": str(uuid4())}]), "webhook endpoint"),
        (rule(actions=[{"type": "assign", "method": "round_robin"}]), "needs a conversation"),
        (rule(organization_id=str(other.org)), "organization_id"),
    ]
    for body, problem in cases:
        answer = await api.post(RULES, json=body, headers=tenant.headers())
        assert answer.status_code == 422, (body, answer.text)
        assert problem in answer.text, (problem, answer.text)
    assert await count(db, tenant.org) == 0 and await count(db, other.org) == 0


async def test_the_order_is_set_whole_and_atomically(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    ids = []
    for name in ("a", "b", "c"):
        made = await api.post(RULES, json=rule(name=name), headers=tenant.headers())
        ids.append(made.json()["id"])
    foreign = (await api.post(RULES, json=rule(), headers=other.headers())).json()["id"]
    order = f"{RULES}/order"
    assert (
        await api.put(order, json={"rule_ids": ids[::-1]}, headers=tenant.headers(read_only=True))
    ).status_code == 403
    done = await api.put(order, json={"rule_ids": ids[::-1]}, headers=tenant.headers())
    assert done.status_code == 200, done.text
    assert [(r["name"], r["position"]) for r in done.json()["data"]] == [
        ("c", 0),
        ("b", 1),
        ("a", 2),
    ]
    unknown = str(uuid4())
    for rule_ids, named in (
        ([ids[0], ids[1], foreign], [foreign, ids[2]]),  # another organization's; one left out
        ([*ids, unknown], [unknown]),
        ([ids[0], ids[0], ids[1], ids[2]], [ids[0]]),
    ):
        refused = await api.put(order, json={"rule_ids": rule_ids}, headers=tenant.headers())
        assert refused.status_code == 422, refused.text
        assert error_of(refused)["details"][0]["field"] == "rule_ids"
        for name in named:
            assert name in error_of(refused)["message"]
    listed = (await api.get(RULES, headers=tenant.headers())).json()["data"]
    assert [r["name"] for r in listed] == ["c", "b", "a"]  # nothing moved
    assert (await api.get(f"{RULES}", headers=other.headers())).json()["data"][0]["position"] == 0


async def test_a_dry_run_of_a_tag_rule_takes_the_tag_from_its_payload(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    vip, plain = await make_tag(db, tenant.org, "VIP"), await make_tag(db, tenant.org, "plain")
    body = rule(
        trigger="contact.tag_added",
        conditions={"tag": {"field": "name", "op": "eq", "value": "VIP"}},
        actions=[{"type": "add_note", "body": "A VIP"}],
    )
    made = await api.post(RULES, json=body, headers=tenant.headers())
    assert made.status_code == 201, made.text
    url = f"{RULES}/{made.json()['id']}/dry-run"
    contact = await make_contact(db, tenant.org)
    read = tenant.headers(read_only=True)
    yes = await api.post(
        url, json={"record_id": str(contact), "payload": {"tag_id": str(vip)}}, headers=read
    )
    assert yes.status_code == 200, yes.text
    assert (yes.json()["matched"], yes.json()["records"]["tag"]) == (True, str(vip))
    (note,) = yes.json()["actions"]
    assert (note["type"], note["body"], note["applies_to"]) == ("add_note", "A VIP", "contact")
    no = await api.post(
        url, json={"record_id": str(contact), "payload": {"tag_id": str(plain)}}, headers=read
    )
    assert (no.json()["matched"], no.json()["conditions"]) == (False, {"tag": False})
    theirs = await make_tag(db, other.org, "VIP")
    for payload, problem in (
        ({}, "payload.tag_id"),  # the conditions read the tag
        ({"tag_id": str(theirs)}, "no tag"),
        ({"tag_id": "vip"}, "must be a UUID"),
        ({"tag_id": str(vip), "previous_status": "open"}, "payload.previous_status"),
    ):
        answer = await api.post(
            url, json={"record_id": str(contact), "payload": payload}, headers=read
        )
        assert answer.status_code == 422, (payload, answer.text)
        assert problem in answer.text, (problem, answer.text)
    assert await db.fetchval("select count(*) from notes") == 0


async def test_a_rules_author_is_the_caller_never_a_value_it_sends(
    tenant: Tenant, runtime: Runtime, db: Connection
):
    """Through PostgREST a member may write rules; the author the rule sends messages as is
    still the member (or, for a key, its issuer), never someone the row names."""
    manager = await member(db, tenant.org, "manager")
    inserted = await as_(
        runtime,
        principal(manager),
        "insert into automation_rules (organization_id, name, position, trigger, actions,"
        " created_by) values ($1, 'r', 0, 'contact.created', '[{\"type\": \"stop\"}]', $2)"
        " returning id, created_by",
        tenant.org,
        tenant.owner,
    )
    assert inserted[0]["created_by"] == manager
    changed = await as_(
        runtime,
        principal(manager),
        "update automation_rules set created_by = $1 where id = $2 returning created_by",
        tenant.owner,
        inserted[0]["id"],
    )
    assert changed[0]["created_by"] == manager
    async with runtime.db.user_tx(tenant.principal) as conn:
        by_key = await conn.fetchval(
            "insert into automation_rules (organization_id, name, position, trigger, actions,"
            " created_by) values ($1, 'k', 1, 'contact.created', '[{\"type\": \"stop\"}]', $2)"
            " returning created_by",
            tenant.org,
            manager,
        )
    assert by_key == tenant.owner  # the key's issuer


async def test_a_key_whose_issuer_is_gone_cannot_save_a_rule_that_sends(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    await db.execute("update api_keys set created_by = null where organization_id = $1", tenant.org)
    sends = rule(trigger="message.received", actions=[{"type": "send_message", "text": "Hi"}])
    refused = await api.post(RULES, json=sends, headers=tenant.headers())
    assert refused.status_code == 422 and "actions[0]" in refused.text, refused.text
    assert await count(db, tenant.org) == 0
    # rules that send nothing need no author
    assert (await api.post(RULES, json=rule(), headers=tenant.headers())).status_code == 201
