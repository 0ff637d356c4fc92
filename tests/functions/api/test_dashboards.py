"""/v1/dashboards and /v1/metrics: keys read the shared dashboards (each role's default
among them), write keys change them, a widget's figures as documented; bad definitions
are 422s naming the problem; another organization's dashboards are not found."""

from __future__ import annotations

import json

import httpx

from shared.db import Connection
from tests.functions.api.conftest import Tenant, error_of
from tests.support import make_conversation


async def test_shared_dashboards_widgets_and_their_figures(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    listed = await api.get("/v1/dashboards", headers=tenant.headers(read_only=True))
    assert listed.status_code == 200, listed.text
    assert {d["default_for_role"] for d in listed.json()["data"]} == {
        "agent",
        "manager",
        "admin",
        "owner",
    }
    refused = await api.post(
        "/v1/dashboards", json={"name": "Ops"}, headers=tenant.headers(read_only=True)
    )
    assert refused.status_code == 403
    created = await api.post("/v1/dashboards", json={"name": "Ops"}, headers=tenant.headers())
    assert created.status_code == 201, created.text
    board = created.json()["id"]
    assert created.json()["shared"] is True

    conversation = await make_conversation(db, tenant.org)
    await db.execute(
        "insert into public.messages (organization_id, conversation_id, channel_account_id,"
        " direction, sender_type, body, status) select organization_id, id, channel_account_id,"
        " 'inbound', 'contact', 'hi', 'received' from public.conversations where id = $1",
        conversation,
    )
    added = await api.post(
        f"/v1/dashboards/{board}/widgets",
        json={
            "metric": "messages_received",
            "visualization": "bar",
            "date_range": {"preset": "today"},
            "options": {"dimension": "channel"},
            "w": 6,
        },
        headers=tenant.headers(),
    )
    assert added.status_code == 201, added.text
    data = await api.get(
        f"/v1/dashboards/{board}/widgets/{added.json()['id']}/data", headers=tenant.headers()
    )
    assert data.status_code == 200, data.text
    assert data.json()["data"] == [{"key": "whatsapp", "label": "whatsapp", "value": 1}]

    figures = await api.get(
        "/v1/metrics/messages_received",
        params={"visualization": "kpi", "preset": "today"},
        headers=tenant.headers(read_only=True),
    )
    assert figures.json()["data"]["value"] == 1
    theirs = await api.get(
        "/v1/metrics/messages_received",
        params={"visualization": "kpi", "preset": "today"},
        headers=other.headers(),
    )
    assert theirs.json()["data"]["value"] == 0  # their own organization only
    assert (await api.get(f"/v1/dashboards/{board}", headers=other.headers())).status_code == 404
    gone = await api.delete(
        f"/v1/dashboards/{board}/widgets/{added.json()['id']}", headers=other.headers()
    )
    assert gone.status_code == 404
    names = {
        m["name"] for m in (await api.get("/v1/metrics", headers=tenant.headers())).json()["data"]
    }
    assert {"first_response_time", "stage_funnel", "campaign_replied_rate", "new_contacts"} <= names


async def test_bad_metric_questions_are_422s_naming_the_problem(
    api: httpx.AsyncClient, tenant: Tenant
):
    cases = [
        ("/v1/metrics/moon_phase", {}, "metric"),
        (
            "/v1/metrics/replies",
            {"visualization": "timeseries", "from": "2023-01-01", "to": "2026-01-01"},
            "date_range",
        ),
        (
            "/v1/metrics/replies",
            {"filter": json.dumps({"field": "nope", "op": "eq", "value": 1})},
            "filter",
        ),
        ("/v1/metrics/replies", {"filter": "{not json"}, "filter"),
        ("/v1/metrics/replies", {"grouping": "hour"}, "grouping"),
        ("/v1/metrics/replies", {"from": "2026-13-01", "to": "2026-12-01"}, "date_range.from"),
    ]
    for path, params, field in cases:
        answer = await api.get(path, params=params, headers=tenant.headers())
        assert answer.status_code == 422, (path, params, answer.text)
        assert field in json.dumps(error_of(answer)), (params, error_of(answer))
