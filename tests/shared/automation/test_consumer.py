"""The automation consumer through the events worker: every action, stop, the loop guard,
a delivery handled twice, and conditions that no longer parse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
import respx

from shared.automation import consumer
from shared.automation.consumer import MAX_DEPTH, run_rules
from shared.db import Connection
from shared.events.base import Event
from shared.runtime import Runtime
from shared.settings import Settings
from tests.channels.kit import post
from tests.channels.whatsapp.kit import WhatsAppKit
from tests.fixtures import load
from tests.functions.webhooks_kit import HOOK, endpoint, public_dns, verified
from tests.shared.automation.kit import drain, make_rule, runs_of, team
from tests.support import make_contact, make_conversation
from tests.support_crm import (
    default_pipeline,
    define_field,
    make_deal,
    make_tag,
    make_task,
    stages_of,
)

KIT = WhatsAppKit()
GRAPH = "https://graph.facebook.com/v21.0/106540352242922/messages"


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> None:
    public_dns(monkeypatch)


@pytest.fixture
async def org(db: Connection) -> dict[str, UUID]:
    return await team(db, admin="admin", agent="agent")


async def tags_of(db: Connection, table: str, column: str, row: UUID) -> set[str]:
    rows = await db.fetch(
        f"select t.name from public.{table} l join public.tags t on t.id = l.tag_id"
        f" where l.{column} = $1",
        row,
    )
    return {r["name"] for r in rows}


async def test_every_action_of_a_message_rule_runs_and_is_logged(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    o = org["org"]
    hook = await endpoint(client, settings, org, HOOK, ["deal.won"])
    await define_field(db, o, "contact", "tier", "text")
    old, new, lead = [await make_tag(db, o, n) for n in ("old", "new", "lead")]
    actions: list[dict[str, Any]] = [
        {"type": "assign", "method": "user", "user_id": str(org["agent"])},
        {"type": "add_tag", "tag_id": str(new)},
        {"type": "remove_tag", "tag_id": str(old)},
        {"type": "add_tag", "tag_id": str(lead), "target": "contact"},
        {"type": "set_custom_field", "key": "tier", "value": "gold"},
        {"type": "set_conversation_status", "status": "pending"},
        {"type": "set_conversation_priority", "priority": "high"},
        {"type": "send_message", "text": "Thanks, we will be right with you"},
        {"type": "add_note", "body": "Asked about pricing"},
        {"type": "create_task", "title": "Call back", "due_in_minutes": 60, "priority": "high"},
        {"type": "send_webhook", "endpoint_id": hook["id"]},
        {"type": "set_custom_field", "key": "tier", "value": 42},  # a text field: refused
    ]
    rule = await make_rule(db, o, "message.received", actions, author=org["owner"])
    account = await KIT.create_account(db, o)
    with respx.mock(assert_all_called=False) as router:
        KIT.mock_provider(router)
        sent = router.post(GRAPH).respond(200, json=load("whatsapp", "send_text_response"))
        hooked = router.post(HOOK).respond(200)
        first = KIT.text_message(account, sender="351911111111", message_id="wamid.E1", text="Hi")
        assert (await post(client, KIT, account.id, first)).status_code == 200
        conversation = await db.fetchrow(
            "select id, contact_id from public.conversations where organization_id = $1", o
        )
        # the fixture's message is old: the contact wrote just now, the window is open
        await db.execute(
            "update public.conversations set last_inbound_at = now() where id = $1",
            conversation["id"],
        )
        await db.execute(
            "insert into public.conversation_tags (organization_id, conversation_id, tag_id)"
            " values ($1, $2, $3)",
            o,
            conversation["id"],
            old,
        )
        await drain(runtime)

    row = await db.fetchrow(
        "select assignee_id, status::text as status, priority from public.conversations"
        " where id = $1",
        conversation["id"],
    )
    assert (row["assignee_id"], row["status"], row["priority"]) == (org["agent"], "pending", "high")
    assert await tags_of(db, "conversation_tags", "conversation_id", conversation["id"]) == {"new"}
    assert await tags_of(db, "contact_tags", "contact_id", conversation["contact_id"]) == {"lead"}
    assert (
        await db.fetchval(
            "select custom_fields ->> 'tier' from public.contacts where id = $1",
            conversation["contact_id"],
        )
        == "gold"
    )
    reply = await db.fetchrow(
        "select body, status::text as status, provider_message_id, sender_id from public.messages"
        " where conversation_id = $1 and direction = 'outbound'",
        conversation["id"],
    )
    assert reply is not None, (await runs_of(db, rule))[0]["actions"][7]
    assert dict(reply) == {
        "body": "Thanks, we will be right with you",
        "status": "sent",
        "provider_message_id": load("whatsapp", "send_text_response")["messages"][0]["id"],
        "sender_id": org["owner"],  # the rule's author
    }
    assert sent.call_count == 1
    assert (
        await db.fetchval(
            "select body from public.notes where conversation_id = $1", conversation["id"]
        )
        == "Asked about pricing"
    )
    task = await db.fetchrow(
        "select title, priority::text as priority, contact_id, due_at > now() as later"
        " from public.tasks where organization_id = $1",
        o,
    )
    assert (task["title"], task["priority"], task["later"]) == ("Call back", "high", True)
    assert task["contact_id"] == conversation["contact_id"]
    assert verified(hook["secret"], hooked.calls[0].request)["data"]["rule"]["id"] == str(rule)

    (run,) = await runs_of(db, rule)
    assert run["status"] == "ran"
    outcomes = [(a["type"], a["ok"]) for a in run["actions"]]
    assert outcomes == [(a["type"], True) for a in actions[:-1]] + [("set_custom_field", False)]
    assert "tier" in run["actions"][-1]["error"]


async def test_a_deal_rule_moves_the_deal_and_stop_ends_the_event(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    o = org["org"]
    stages = await stages_of(db, await default_pipeline(db, o))
    target = next(s for name, s in stages.items() if name != "Lead")
    first = await make_rule(
        db,
        o,
        "deal.created",
        [{"type": "move_deal_stage", "stage_id": str(target)}, {"type": "stop"}],
        conditions={"deal": {"field": "title", "op": "starts_with", "value": "big"}},
        position=0,
    )
    never = await make_tag(db, o, "never")
    second = await make_rule(
        db, o, "deal.created", [{"type": "add_tag", "tag_id": str(never)}], position=1
    )
    big = await make_deal(db, o, title="Big one")
    small = await make_deal(db, o, title="Small one")
    await drain(runtime)
    assert await db.fetchval("select stage_id from public.deals where id = $1", big) == target
    assert await tags_of(db, "deal_tags", "deal_id", big) == set()  # stopped
    assert await tags_of(db, "deal_tags", "deal_id", small) == {"never"}
    assert [r["status"] for r in await runs_of(db, first)] == ["ran", "not_matched"]
    assert [r["status"] for r in await runs_of(db, second)] == ["ran"]  # the small deal only


async def test_a_rule_never_retriggers_itself_and_two_rules_stop_each_other(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    o = org["org"]
    ping = await make_rule(
        db,
        o,
        "conversation.status_changed",
        [{"type": "set_conversation_status", "status": "pending"}],
        conditions={"conversation": {"field": "status", "op": "eq", "value": "open"}},
        position=0,
    )
    pong = await make_rule(
        db,
        o,
        "conversation.status_changed",
        [{"type": "set_conversation_status", "status": "open"}],
        conditions={"conversation": {"field": "status", "op": "eq", "value": "pending"}},
        position=1,
    )
    conversation = await make_conversation(db, o)
    await db.execute(
        "update public.conversations set status = 'pending' where id = $1", conversation
    )
    await drain(runtime)  # ends: without the guard the two would flip the status forever
    events = await db.fetch(
        "select payload -> 'conversation' ->> 'status' as status, causation"
        " from public.outbox_events where aggregate_id = $1"
        " and event_type = 'conversation.status_changed' order by id",
        conversation,
    )
    # by hand; pong's change; ping's change, where both are already in the chain
    assert [e["status"] for e in events] == ["pending", "open", "pending"]
    assert events[0]["causation"] is None
    assert (events[1]["causation"]["rules"], events[1]["causation"]["depth"]) == ([str(pong)], 1)
    last = events[-1]["causation"]
    assert (last["rules"], last["depth"]) == ([str(pong), str(ping)], 2)
    assert [r["status"] for r in await runs_of(db, ping)] == ["not_matched", "ran", "skipped"]
    assert [r["status"] for r in await runs_of(db, pong)] == ["ran", "skipped", "skipped"]
    reasons = {r["reason"] for r in await runs_of(db, pong)}
    assert "the rule already ran in this chain of events" in reasons


async def test_a_chain_of_rules_stops_at_the_maximum_depth(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    o = org["org"]
    tags = [await make_tag(db, o, f"t{i}") for i in range(MAX_DEPTH + 2)]
    rules = []
    for i in reversed(range(MAX_DEPTH + 1)):  # the latest step first: each event moves one on
        rules.append(
            await make_rule(
                db,
                o,
                "contact.tag_added",
                [{"type": "add_tag", "tag_id": str(tags[i + 1])}],
                conditions={"contact": {"field": "tags", "op": "has_tag", "value": f"t{i}"}},
                position=MAX_DEPTH - i,
            )
        )
    contact = await make_contact(db, o)
    await db.execute(
        "insert into public.contact_tags (organization_id, contact_id, tag_id) values ($1, $2, $3)",
        o,
        contact,
        tags[0],
    )
    await drain(runtime)
    got = await tags_of(db, "contact_tags", "contact_id", contact)
    assert got == {f"t{i}" for i in range(MAX_DEPTH + 1)}  # the last rule never ran
    last = await runs_of(db, rules[0])
    assert any(f"reached {MAX_DEPTH}" in (r["reason"] or "") for r in last)


async def test_a_delivery_handled_again_acts_once(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    o = org["org"]
    await make_rule(db, o, "contact.created", [{"type": "add_note", "body": "Welcome"}])
    contact = await make_contact(db, o)
    row = await db.fetchrow(
        "select * from public.outbox_events where aggregate_id = $1 and event_type = $2",
        contact,
        "contact.created",
    )
    event = Event(
        id=row["id"],
        organization_id=o,
        type=row["event_type"],
        aggregate_id=contact,
        payload=row["payload"],
        created_at=row["created_at"],
        causation=row["causation"],
    )
    await run_rules(runtime, event)
    await run_rules(runtime, event)  # a retry after a crash past the commit
    await drain(runtime)
    assert (
        await db.fetchval("select count(*) from public.notes where contact_id = $1", contact) == 1
    )


async def test_conditions_that_no_longer_parse_skip_the_rule_with_the_reason(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    o = org["org"]
    await define_field(db, o, "contact", "score", "number")
    rule = await make_rule(
        db,
        o,
        "contact.created",
        [{"type": "add_note", "body": "High score"}],
        conditions={"contact": {"field": "custom_fields.score", "op": "gt", "value": 10}},
    )
    matching = await make_contact(db, o, custom_fields={"score": 11})
    other = await make_contact(db, o, custom_fields={"score": 3})
    await drain(runtime)
    await db.execute("delete from public.custom_field_definitions where key = 'score'")
    await make_contact(db, o)
    await drain(runtime)
    assert [r["status"] for r in await runs_of(db, rule)] == ["ran", "not_matched", "skipped"]
    assert "invalid rule: conditions.contact" in (await runs_of(db, rule))[-1]["reason"]
    notes = await db.fetch("select contact_id from public.notes where organization_id = $1", o)
    assert [n["contact_id"] for n in notes] == [matching] and other != matching


async def test_an_overdue_task_triggers_its_rule_once_per_due_time(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    o = org["org"]
    rule = await make_rule(
        db, o, "task.overdue", [{"type": "create_task", "title": "Chase the overdue task"}]
    )
    late = await make_task(db, o, due_at=datetime.now(UTC) - timedelta(minutes=1))
    await make_task(db, o, due_at=datetime.now(UTC) + timedelta(hours=1))
    await make_task(db, o, due_at=datetime.now(UTC) - timedelta(hours=1), status="done")
    sweep = "/functions/v1/automation-sweep"
    assert (await client.post(sweep)).status_code == 401
    service = {"Authorization": f"Bearer {settings.service_key}"}
    assert (await client.post(sweep, headers=service)).json() == {"overdue": 1}
    assert (await client.post(sweep, headers=service)).json() == {"overdue": 0}  # once
    await drain(runtime)
    assert [r["status"] for r in await runs_of(db, rule)] == ["ran"]
    chasers = "select count(*) from public.tasks where title = 'Chase the overdue task'"
    assert await db.fetchval(chasers) == 1
    # given a new due time, it can become overdue again
    await db.execute(
        "update public.tasks set due_at = now() - interval '1 second' where id = $1", late
    )
    assert (await client.post(sweep, headers=service)).json() == {"overdue": 1}
    await drain(runtime)
    assert await db.fetchval(chasers) == 2


async def test_a_crash_after_the_commit_sends_once_and_keeps_the_stop(
    client: httpx.AsyncClient,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
    monkeypatch: pytest.MonkeyPatch,
):
    o = org["org"]
    greet = [{"type": "send_message", "text": "Hello!"}, {"type": "stop"}]
    await make_rule(db, o, "message.received", greet, author=org["owner"], position=0)
    later = await make_rule(
        db, o, "message.received", [{"type": "add_note", "body": "x"}], position=1
    )
    account = await KIT.create_account(db, o)
    with respx.mock(assert_all_called=False) as router:
        KIT.mock_provider(router)
        sent = router.post(GRAPH).respond(200, json=load("whatsapp", "send_text_response"))
        first = KIT.text_message(account, sender="351922222222", message_id="wamid.C1", text="Hi")
        assert (await post(client, KIT, account.id, first)).status_code == 200
        await db.execute("update public.conversations set last_inbound_at = now()")
        row = await db.fetchrow(
            "select * from public.outbox_events where event_type = 'message.received'"
        )
        event = Event(
            id=row["id"],
            organization_id=o,
            type=row["event_type"],
            aggregate_id=row["aggregate_id"],
            payload=row["payload"],
            created_at=row["created_at"],
            causation=row["causation"],
        )

        async def crash(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("the worker died after the commit")

        with monkeypatch.context() as patched:
            patched.setattr(consumer, "_send", crash)
            with pytest.raises(RuntimeError):
                await run_rules(runtime, event)
        assert sent.call_count == 0
        await run_rules(runtime, event)
        await run_rules(runtime, event)
    assert sent.call_count == 1
    assert await runs_of(db, later) == []  # the stop still holds
    replies = "select count(*) from public.messages where direction = 'outbound'"
    assert await db.fetchval(replies) == 1


async def test_a_tag_added_rule_can_name_the_tag_that_was_added(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    o = org["org"]
    vip, other = await make_tag(db, o, "VIP"), await make_tag(db, o, "other")
    rule = await make_rule(
        db,
        o,
        "contact.tag_added",
        [{"type": "add_note", "body": "A VIP!"}],
        conditions={"tag": {"field": "name", "op": "eq", "value": "vip"}},
    )
    contact = await make_contact(db, o)
    for tag_id in (other, vip):
        await db.execute(
            "insert into public.contact_tags (organization_id, contact_id, tag_id)"
            " values ($1, $2, $3)",
            o,
            contact,
            tag_id,
        )
    await drain(runtime)
    assert [r["status"] for r in await runs_of(db, rule)] == ["not_matched", "ran"]
    assert (
        await db.fetchval("select count(*) from public.notes where contact_id = $1", contact) == 1
    )
