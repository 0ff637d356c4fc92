"""bot-flows and /v1/bot-flows: saving checks the whole graph (every problem with its
node), roles and keys, publishing versions, simulating (nothing sent), starting a flow,
reading sessions and their steps; another organization's rows are 404."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
import respx

from shared.db import Connection
from shared.runtime import Runtime
from shared.settings import Settings
from tests.shared.automation.kit import team
from tests.shared.billing.kit import put_on_plan
from tests.shared.bots.flows import chain, lead_flow, node
from tests.shared.bots.kit import mock_sends, say, sent_texts, world
from tests.support import auth, issue_key

FLOWS = "/functions/v1/bot-flows"
API = "/functions/v1/api/v1"


def body(org: UUID, graph: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"organization_id": str(org), "name": "Leads", "graph": graph, **more}


async def test_saving_checks_the_graph_and_roles(
    client: httpx.AsyncClient, settings: Settings, db: Connection
) -> None:
    people = await team(db, manager="manager", agent="agent")
    manager, agent = auth(settings, people["manager"]), auth(settings, people["agent"])
    org = people["org"]

    bad = chain(
        node("weird", "teleport"), node("say", "send_message", text="{{ nope }}"), node("e", "end")
    )
    refused = await client.post(f"{FLOWS}/", json=body(org, bad), headers=manager)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "invalid_flow" and error["message"].startswith(
        "node weird: kind: unknown"
    )
    assert {d["node"] for d in error["details"]} >= {"weird"}

    reads = chain(node("say", "send_message", text="{{ nope }}"), nope="text")
    error = (await client.post(f"{FLOWS}/", json=body(org, reads), headers=manager)).json()["error"]
    assert error["details"] == [
        {
            "node": "say",
            "field": "variables",
            "message": "variable 'nope' may be read before it is set",
        }
    ]
    huge = chain(*[node(f"n{i}", "send_message", text="x") for i in range(201)])
    too_large = await client.post(f"{FLOWS}/", json=body(org, huge), headers=manager)
    assert too_large.status_code == 422 and too_large.json()["error"]["code"] == "flow_too_large"
    field = chain(
        node("c", "condition", contact={"field": "custom_fields.nope", "op": "eq", "value": 1})
    )
    error = (await client.post(f"{FLOWS}/", json=body(org, field), headers=manager)).json()["error"]
    assert error["details"][0]["node"] == "c" and "nope" in error["details"][0]["message"]
    regex = await client.post(
        f"{FLOWS}/",
        json=body(org, lead_flow(), triggers=[{"type": "regex", "pattern": "(("}]),
        headers=manager,
    )
    assert regex.status_code == 422 and "triggers[0].pattern" in regex.json()["error"]["message"]
    assert await db.fetchval("select count(*) from bot_flows") == 0

    assert (
        await client.post(f"{FLOWS}/", json=body(org, lead_flow()), headers=agent)
    ).status_code == 403
    created = await client.post(f"{FLOWS}/", json=body(org, lead_flow()), headers=manager)
    assert created.status_code == 201, created.text
    flow = created.json()
    assert (
        await client.patch(f"{FLOWS}/{flow['id']}", json={"name": "x"}, headers=agent)
    ).status_code == 403
    assert (await client.post(f"{FLOWS}/{flow['id']}/publish", headers=agent)).status_code == 403
    listed = await client.get(f"{FLOWS}/", params={"organization_id": str(org)}, headers=agent)
    assert [f["id"] for f in listed.json()["data"]] == [flow["id"]]
    checked = await client.post(f"{FLOWS}/validate", json={"graph": bad}, headers=agent)
    assert checked.json()["valid"] is False and checked.json()["problems"][0]["node"] == "weird"


async def test_publish_simulate_start_and_read_the_log(
    client: httpx.AsyncClient, settings: Settings, db: Connection, runtime: Runtime
) -> None:
    w = await world(db)
    owner = auth(settings, w.owner)
    flow = (await client.post(f"{FLOWS}/", json=body(w.org, lead_flow()), headers=owner)).json()
    first = await client.post(f"{FLOWS}/{flow['id']}/publish", headers=owner)
    second = await client.post(f"{FLOWS}/{flow['id']}/publish", headers=owner)
    assert (first.json()["version"], second.json()["version"]) == (1, 2)
    versions = (await client.get(f"{FLOWS}/{flow['id']}/versions", headers=owner)).json()["data"]
    assert [v["version"] for v in versions] == [2, 1]

    script = {
        "inputs": [{"text": "nope"}, {"text": "ann@example.com"}, {"text": "Premium"}],
        "variables": {"contact_name": "Ann"},
        "http": {"lookup": {"status": 200, "body": {"lead": {"score": 9}}}},
    }
    with respx.mock as router:  # nothing may go out
        simulated = await client.post(f"{FLOWS}/{flow['id']}/simulate", json=script, headers=owner)
    assert simulated.status_code == 200, simulated.text
    result = simulated.json()
    assert result["status"] == "handed_off"
    assert result["variables"] | {} == {
        **result["variables"],
        "email": "ann@example.com",
        "plan": "premium",
        "score": 9,
    }
    bot_lines = [line["text"] for line in result["transcript"] if line["from"] == "bot"]
    assert bot_lines == [
        "Hi Ann!",
        "Your e-mail?",
        "That is not an e-mail address.",
        "Which plan?",
        "Thanks, ann@example.com (score 9).",
        "A colleague will take over.",
    ]
    assert not router.calls and await db.fetchval("select count(*) from messages") == 0
    timed_out = {**script, "http": {"lookup": {"error": "no answer within 5 s"}}, "version": 1}
    result = (
        await client.post(f"{FLOWS}/{flow['id']}/simulate", json=timed_out, headers=owner)
    ).json()
    assert (
        result["steps"][-2]["error"] == "no answer within 5 s"
        and "score" not in result["variables"]
    )

    with respx.mock as router:
        sends = mock_sends(router)
        await say(client, w, "hello")
        conversation = await db.fetchval("select id from conversations")
        started = await client.post(
            f"{FLOWS}/{flow['id']}/start",
            json={"conversation_id": str(conversation)},
            headers=owner,
        )
        again = await client.post(
            f"{FLOWS}/{flow['id']}/start",
            json={"conversation_id": str(conversation)},
            headers=owner,
        )
    assert started.status_code == 201 and started.json()["status"] == "waiting"
    assert again.status_code == 409 and again.json()["error"]["code"] == "session_live"
    assert sent_texts(sends)[-1] == "Your e-mail?"
    session = started.json()
    steps = (await client.get(f"{FLOWS}/sessions/{session['id']}/steps", headers=owner)).json()[
        "data"
    ]
    assert [s["node_id"] for s in steps] == ["start", "hello", "ask_email"]
    assert all(s["duration_ms"] >= 0 for s in steps)
    listed = await client.get(
        f"{FLOWS}/sessions",
        params={"organization_id": str(w.org), "status": "waiting"},
        headers=owner,
    )
    assert [s["id"] for s in listed.json()["data"]] == [session["id"]]


async def test_the_public_api(client: httpx.AsyncClient, runtime: Runtime, db: Connection) -> None:
    w = await world(db)
    other = await world(db)
    writer, _ = await issue_key(runtime, w.org, w.owner, scopes=["read", "write"])
    reader, _ = await issue_key(runtime, w.org, w.owner, scopes=["read"])
    stranger, _ = await issue_key(runtime, other.org, other.owner, scopes=["read", "write"])
    headers = {"Authorization": f"Bearer {writer}"}
    flow_body = {
        "name": "Leads",
        "graph": lead_flow(),
        "triggers": [{"type": "keyword", "keywords": ["hi"]}],
    }

    unknown = chain(node("x", "teleport"))
    refused = await client.post(
        f"{API}/bot-flows", json={"name": "x", "graph": unknown}, headers=headers
    )
    assert refused.status_code == 422 and refused.json()["error"]["details"][0]["node"] == "x"
    read_only = await client.post(
        f"{API}/bot-flows", json=flow_body, headers={"Authorization": f"Bearer {reader}"}
    )
    assert read_only.status_code == 403
    created = await client.post(f"{API}/bot-flows", json=flow_body, headers=headers)
    assert created.status_code == 201, created.text
    flow = created.json()
    published = await client.post(f"{API}/bot-flows/{flow['id']}/publish", headers=headers)
    assert published.status_code == 201 and published.json()["version"] == 1
    theirs = {"Authorization": f"Bearer {stranger}"}
    assert (await client.get(f"{API}/bot-flows/{flow['id']}", headers=theirs)).status_code == 404
    assert (
        await client.post(f"{API}/bot-flows/{flow['id']}/publish", headers=theirs)
    ).status_code == 404
    assert (await client.get(f"{API}/bot-flows", headers=theirs)).json() == []

    with respx.mock as router:
        mock_sends(router)
        await say(client, w, "hi")
    sessions = (await client.get(f"{API}/bot-sessions", headers=headers)).json()
    assert [s["status"] for s in sessions] == ["waiting"]
    assert (await client.get(f"{API}/bot-sessions", headers=theirs)).json() == []
    assert (
        await client.get(f"{API}/bot-sessions/{sessions[0]['id']}/steps", headers=theirs)
    ).status_code == 404
    steps = (
        await client.get(f"{API}/bot-sessions/{sessions[0]['id']}/steps", headers=headers)
    ).json()
    assert steps[-1]["node_id"] == "ask_email"
    conversation = sessions[0]["conversation_id"]
    busy = await client.post(
        f"{API}/bot-flows/{flow['id']}/start",
        json={"conversation_id": conversation},
        headers=headers,
    )
    assert busy.status_code == 409
    assert (
        await client.post(
            f"{API}/bot-flows/{flow['id']}/start",
            json={"conversation_id": conversation},
            headers=theirs,
        )
    ).status_code == 404
    deleted = await client.delete(f"{API}/bot-flows/{flow['id']}", headers=headers)
    assert (
        deleted.status_code == 204 and await db.fetchval("select count(*) from bot_sessions") == 0
    )


async def test_publishing_a_draft_changed_since_it_was_loaded(
    client: httpx.AsyncClient, settings: Settings, db: Connection
) -> None:
    people = await team(db)
    owner = auth(settings, people["owner"])
    flow = (
        await client.post(f"{FLOWS}/", json=body(people["org"], lead_flow()), headers=owner)
    ).json()
    await client.patch(f"{FLOWS}/{flow['id']}", json={"name": "renamed"}, headers=owner)
    stale = await client.post(
        f"{FLOWS}/{flow['id']}/publish",
        json={"draft_updated_at": flow["updated_at"]},
        headers=owner,
    )
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "draft_changed"
    assert await db.fetchval("select count(*) from bot_flow_versions") == 0


async def test_a_plan_without_bots_saves_publishes_and_starts_none(
    client: httpx.AsyncClient, settings: Settings, db: Connection
) -> None:
    people = await team(db)
    owner = auth(settings, people["owner"])
    flow = (
        await client.post(f"{FLOWS}/", json=body(people["org"], lead_flow()), headers=owner)
    ).json()
    await put_on_plan(db, people["org"], features=("api",))
    refused = [
        await client.post(f"{FLOWS}/", json=body(people["org"], lead_flow()), headers=owner),
        await client.post(f"{FLOWS}/{flow['id']}/publish", json={}, headers=owner),
    ]
    for answer in refused:
        assert answer.status_code == 402, answer.text
        assert answer.json()["error"]["details"]["feature"] == "bots"
    assert (
        await db.fetchval(
            "select count(*) from bot_flows where organization_id = $1", people["org"]
        )
        == 1
    )
    assert (
        await db.fetchval("select count(*) from bot_flow_versions where flow_id = $1", flow["id"])
        == 0
    )
