"""dashboards: own and shared dashboards by role, each role's default, widgets checked
whole (a bad one is a 422 naming the problem and saves nothing), their data, and agents
seeing team figures as the organization allows."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from shared.db import Connection
from shared.runtime import Runtime
from shared.settings import Settings
from tests.support import as_, auth, make_conversation, make_org, make_user, member, principal

URL = "/functions/v1/dashboards"


@pytest.fixture
async def team(db: Connection) -> dict[str, UUID]:
    owner = await make_user(db)
    org = await make_org(db, owner)
    return {
        "org": org,
        "owner": owner,
        "manager": await member(db, org, "manager"),
        "agent": await member(db, org, "agent"),
        "agent2": await member(db, org, "agent"),
    }


def widget(**fields: Any) -> dict[str, Any]:
    return {"metric": "messages_received", "visualization": "timeseries", "x": 0, "y": 0, **fields}


async def test_own_and_shared_dashboards_by_role_and_the_role_defaults(
    client: httpx.AsyncClient, settings: Settings, team: dict[str, UUID], runtime: Runtime
):
    org = str(team["org"])
    as_agent, as_manager = auth(settings, team["agent"]), auth(settings, team["manager"])
    default = await client.get(f"{URL}/default", params={"organization_id": org}, headers=as_agent)
    assert default.status_code == 200, default.text
    assert default.json()["name"] == "My day"
    assert {w["metric"] for w in default.json()["widgets"]} >= {"replies", "open_load"}
    for w in default.json()["widgets"]:  # every seeded widget answers
        data = await client.get(
            f"{URL}/{default.json()['id']}/widgets/{w['id']}/data", headers=as_agent
        )
        assert data.status_code == 200, (w["metric"], data.text)
    listed = await client.get(URL + "/", params={"organization_id": org}, headers=as_manager)
    assert sorted(d["default_for_role"] for d in listed.json()["data"]) == [
        "admin",
        "agent",
        "manager",
        "owner",
    ]

    own = await client.post(
        URL + "/", json={"organization_id": org, "name": "Mine"}, headers=as_agent
    )
    assert own.status_code == 201, own.text
    assert own.json()["shared"] is False
    refused = await client.post(
        URL + "/", json={"organization_id": org, "name": "Ours", "shared": True}, headers=as_agent
    )
    assert refused.status_code == 403
    shared = await client.post(
        URL + "/", json={"organization_id": org, "name": "Ours", "shared": True}, headers=as_manager
    )
    assert shared.status_code == 201
    # the agent's own is theirs alone; the shared one everyone's to read, managers' to write
    assert (await client.get(f"{URL}/{own.json()['id']}", headers=as_manager)).status_code == 404
    assert (await client.get(f"{URL}/{shared.json()['id']}", headers=as_agent)).status_code == 200
    added = await client.post(
        f"{URL}/{shared.json()['id']}/widgets", json=widget(), headers=as_agent
    )
    assert added.status_code == 403
    rename = await client.patch(
        f"{URL}/{shared.json()['id']}", json={"name": "X"}, headers=as_agent
    )
    assert rename.status_code == 403
    added = await client.post(
        f"{URL}/{own.json()['id']}/widgets",
        json=widget(title="In", w=6, options={"dimension": "channel"}, grouping="week"),
        headers=as_agent,
    )
    assert added.status_code == 201, added.text
    moved = await client.patch(
        f"{URL}/{own.json()['id']}/widgets/{added.json()['id']}",
        json={"x": 6, "visualization": "kpi"},
        headers=as_agent,
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["x"], moved.json()["grouping"], moved.json()["title"]) == (6, "week", "In")
    data = await client.get(
        f"{URL}/{own.json()['id']}/widgets/{added.json()['id']}/data", headers=as_agent
    )
    assert data.json()["data"] == {"value": 0, "previous": 0, "change": None}

    # the same through the database, as the SPA would (PostgREST): the policies hold
    agent = principal(team["agent"])
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_(
            runtime,
            agent,
            "insert into public.dashboards (organization_id, name) values ($1, 'S')",
            team["org"],
        )
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_(
            runtime,
            agent,
            "insert into public.dashboard_widgets (organization_id, dashboard_id, metric,"
            " visualization)"
            " values ($1, $2, 'replies', 'kpi')",
            team["org"],
            UUID(shared.json()["id"]),
        )
    seen = await as_(
        runtime,
        principal(team["agent2"]),
        "select id from public.dashboards where id = $1",
        UUID(own.json()["id"]),
    )
    assert seen == []
    assert (await client.delete(f"{URL}/{own.json()['id']}", headers=as_agent)).status_code == 204


BAD: list[tuple[dict[str, Any], str, str]] = [
    (widget(metric="revenue_per_moon"), "metric", "unknown_metric"),
    (widget(filter={"field": "colour", "op": "eq", "value": "red"}), "filter", "validation_error"),
    (
        widget(date_range={"from": "2024-01-01", "to": "2026-06-30"}),
        "date_range",
        "validation_error",
    ),
    (widget(grouping="hour"), "grouping", "validation_error"),
    (widget(date_range={"preset": "since_forever"}), "date_range.preset", "validation_error"),
    (
        widget(date_range={"from": "2026-03-01", "to": "2026-02-01"}),
        "date_range.to",
        "validation_error",
    ),
    (widget(options={"dimension": "planet"}), "options.dimension", "validation_error"),
    (widget(options={"colour": "red"}), "options.colour", "validation_error"),
    (widget(visualization="funnel"), "visualization", "validation_error"),
    (
        widget(
            metric="campaign_read_rate", visualization="bar", filter={"field": "id", "op": "is_set"}
        ),
        "filter",
        "validation_error",
    ),
    (widget(x=10, w=4), "w", "validation_error"),
]


async def test_a_bad_widget_is_a_422_naming_the_problem_and_saves_nothing(
    client: httpx.AsyncClient, settings: Settings, team: dict[str, UUID], db: Connection
):
    headers = auth(settings, team["manager"])
    board = await client.post(
        URL + "/",
        json={"organization_id": str(team["org"]), "name": "B", "shared": True},
        headers=headers,
    )
    for body, field, code in BAD:
        answer = await client.post(
            f"{URL}/{board.json()['id']}/widgets", json=body, headers=headers
        )
        assert answer.status_code == 422, (body, answer.text)
        error = answer.json()["error"]
        assert error["code"] == code, body
        assert field in error["message"] or any(
            field in str(d) for d in error.get("details", [])
        ), error
    assert (
        await db.fetchval(
            "select count(*) from public.dashboard_widgets where dashboard_id = $1",
            UUID(board.json()["id"]),
        )
        == 0
    )
    # two years at week grain is fine
    fine = await client.post(
        f"{URL}/{board.json()['id']}/widgets",
        json=widget(grouping="week", date_range={"from": "2024-01-01", "to": "2026-06-30"}),
        headers=headers,
    )
    assert fine.status_code == 201, fine.text
    # a widget stored past the function (PostgREST) with an unknown metric: a 422 on reading it
    await db.execute(
        "update public.dashboard_widgets set metric = 'gone' where id = $1", UUID(fine.json()["id"])
    )
    data = await client.get(
        f"{URL}/{board.json()['id']}/widgets/{fine.json()['id']}/data", headers=headers
    )
    assert (data.status_code, data.json()["error"]["code"]) == (422, "unknown_metric")


async def test_agents_see_team_figures_as_the_organization_allows(
    client: httpx.AsyncClient, settings: Settings, team: dict[str, UUID], db: Connection
):
    org = team["org"]
    conversation = await make_conversation(db, org)
    for sender in (team["agent"], team["agent2"], team["agent2"]):
        await db.execute(
            "insert into public.messages (organization_id, conversation_id, channel_account_id,"
            " direction, sender_type, sender_id, body, status) select organization_id, id,"
            " channel_account_id, 'outbound', 'user', $2, 'hi', 'sent' from public.conversations"
            " where id = $1",
            conversation,
            sender,
        )
    question = {
        "organization_id": str(org),
        "metric": "replies",
        "visualization": "leaderboard",
        "date_range": {"preset": "today"},
    }

    async def board(who: UUID) -> dict[str, Any]:
        answer = await client.post(f"{URL}/data", json=question, headers=auth(settings, who))
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    mine = await board(team["agent"])
    assert [(r["key"], r["value"]) for r in mine["data"]] == [(str(team["agent"]), 1)]
    assert mine["restricted_to_user"] == str(team["agent"])
    everyone = await board(team["manager"])
    assert [(r["key"], r["value"]) for r in everyone["data"]] == [
        (str(team["agent2"]), 2),
        (str(team["agent"]), 1),
    ]
    setting = {"organization_id": str(org), "agents_see_team_metrics": True}
    refused = await client.put(
        f"{URL}/settings", json=setting, headers=auth(settings, team["manager"])
    )
    assert refused.status_code == 403
    allowed = await client.put(
        f"{URL}/settings", json=setting, headers=auth(settings, team["owner"])
    )
    assert allowed.status_code == 200
    assert (await board(team["agent"]))["data"] == everyone["data"]
    # a stranger's token reads nothing of the organization
    stranger = await make_user(db)
    answer = await client.post(f"{URL}/data", json=question, headers=auth(settings, stranger))
    assert answer.status_code == 404
