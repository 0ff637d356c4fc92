"""/v1/deals and /v1/pipelines: the board through the API."""

from __future__ import annotations

import json
from typing import Any

import httpx

from shared.db import Connection
from tests.functions.api.conftest import Tenant, error_of
from tests.support import make_contact
from tests.support_crm import default_pipeline, define_field, make_company, make_deal, stages_of


async def board(
    api: httpx.AsyncClient, tenant: Tenant, pipeline: Any, **params: Any
) -> dict[str, Any]:
    response = await api.get(
        f"/v1/pipelines/{pipeline}/board", params=params, headers=tenant.headers()
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_new_deal_lands_in_the_default_pipeline_first_stage(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    pipeline = await default_pipeline(db, tenant.org)
    stages = await stages_of(db, pipeline)
    response = await api.post(
        "/v1/deals",
        json={"title": "Acme renewal", "value": "1500.50", "currency": "EUR", "tags": ["hot"]},
        headers=tenant.headers(),
    )
    assert response.status_code == 201, response.text
    deal = response.json()
    assert deal["pipeline_id"] == str(pipeline) and deal["stage_id"] == str(stages["Lead"])
    assert (deal["status"], deal["probability"], deal["value"]) == ("open", 10, "1500.50")
    assert [t["name"] for t in deal["tags"]] == ["hot"]


async def test_bad_deals_are_refused_naming_the_field(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    theirs = await stages_of(db, await default_pipeline(db, other.org))
    cases = [
        ({"title": "x", "value": -1}, "body.value"),
        ({"title": "x", "value": "1.234"}, "body.value"),
        ({"title": "x", "currency": "euro"}, "body.currency"),
        ({"title": "x", "probability": 101}, "body.probability"),
        ({"title": ""}, "body.title"),
        ({"title": "x", "stage_id": str(theirs["Lead"])}, None),  # another org's stage
    ]
    for body, field in cases:
        response = await api.post("/v1/deals", json=body, headers=tenant.headers())
        assert response.status_code == 422, body
        error = error_of(response)
        if field:
            assert field in [d["field"] for d in error["details"]], body
        else:
            assert error["message"] == "stage_id: no such stage"
    assert await db.fetchval("select count(*) from deals") == 0


async def test_winning_moving_and_the_history(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    pipeline = await default_pipeline(db, tenant.org)
    stages = await stages_of(db, pipeline)
    a, b, c = [await make_deal(db, tenant.org) for _ in range(3)]
    moved = await api.post(f"/v1/deals/{c}/move", json={"index": 0}, headers=tenant.headers())
    assert moved.status_code == 200, moved.text
    lead = (await board(api, tenant, pipeline))["stages"][0]
    assert [d["id"] for d in lead["deals"]] == [str(c), str(a), str(b)]

    across = await api.post(
        f"/v1/deals/{a}/move",
        json={"stage_id": str(stages["Proposal"]), "index": 0},
        headers=tenant.headers(),
    )
    assert (across.json()["stage_id"], across.json()["probability"]) == (
        str(stages["Proposal"]),
        50,
    )
    won = await api.patch(f"/v1/deals/{b}", json={"status": "won"}, headers=tenant.headers())
    assert won.json()["stage_id"] == str(stages["Closed Won"])
    assert won.json()["won_at"] is not None
    lost = await api.patch(
        f"/v1/deals/{c}",
        json={"status": "lost", "lost_reason": "Budget"},
        headers=tenant.headers(),
    )
    assert (lost.json()["status"], lost.json()["lost_reason"]) == ("lost", "Budget")
    history = await api.get(f"/v1/deals/{a}/stage-changes", headers=tenant.headers())
    assert [(h["from_stage_id"], h["to_stage_id"]) for h in history.json()] == [
        (None, str(stages["Lead"])),
        (str(stages["Lead"]), str(stages["Proposal"])),
    ]
    assert history.json()[1]["api_key_id"] == str(tenant.principal.key_id)
    wrong_stage = await api.patch(
        f"/v1/deals/{a}",
        json={"status": "won", "stage_id": str(stages["Lead"])},
        headers=tenant.headers(),
    )
    assert wrong_stage.status_code == 422
    assert error_of(wrong_stage)["message"].startswith("status: the deal is won")


async def test_the_board_groups_open_deals_with_contact_names_and_totals(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    pipeline = await default_pipeline(db, tenant.org)
    stages = await stages_of(db, pipeline)
    ana = await make_contact(db, tenant.org, name="Ana")
    acme = await make_company(db, tenant.org, name="Acme")
    await make_deal(db, tenant.org, contact_id=ana, company_id=acme, value=100, currency="EUR")
    await make_deal(db, tenant.org, value=50, currency="EUR")
    await make_deal(db, tenant.org, value=70)
    await make_deal(db, tenant.org, stage_id=stages["Qualified"])
    await make_deal(db, tenant.org, stage_id=stages["Closed Won"], value=999)
    await make_deal(db, other.org, value=1)

    full = await board(api, tenant, pipeline)
    columns = {s["name"]: s for s in full["stages"]}
    assert list(columns) == [
        "Lead",
        "Qualified",
        "Proposal",
        "Negotiation",
        "Closed Won",
        "Closed Lost",
    ]
    lead = columns["Lead"]
    assert [d["contact_name"] for d in lead["deals"]] == ["Ana", None, None]
    assert lead["deals"][0]["company_name"] == "Acme"
    assert lead["total_deals"] == 3
    assert lead["total_value"] == {"EUR": "150.00", "USD": "70.00"}
    assert columns["Qualified"]["total_deals"] == 1
    assert columns["Closed Won"]["deals"] == []  # the board shows open deals
    top = await board(api, tenant, pipeline, per_stage=1)
    assert len(top["stages"][0]["deals"]) == 1 and top["stages"][0]["has_more"]

    theirs = await default_pipeline(db, other.org)
    assert (
        await api.get(f"/v1/pipelines/{theirs}/board", headers=tenant.headers())
    ).status_code == 404


async def test_pipelines_are_read_only_in_the_api(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    pipeline = await default_pipeline(db, tenant.org)
    one = await api.get(f"/v1/pipelines/{pipeline}", headers=tenant.headers())
    assert [s["name"] for s in one.json()["stages"]][-2:] == ["Closed Won", "Closed Lost"]
    for method in ("POST", "PATCH", "DELETE"):
        path = "/v1/pipelines" if method == "POST" else f"/v1/pipelines/{pipeline}"
        response = await api.request(method, path, json={}, headers=tenant.headers())
        assert response.status_code == 405, method
    assert await db.fetchval("select count(*) from pipelines where id = $1", pipeline) == 1


async def test_deal_custom_fields_and_filters(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    await define_field(db, tenant.org, "deal", "segment", "select", options=["smb", "enterprise"])
    await define_field(db, tenant.org, "deal", "renewal", "date", required=True)
    missing = await api.post("/v1/deals", json={"title": "A"}, headers=tenant.headers())
    assert missing.status_code == 422
    assert error_of(missing)["message"] == "custom_fields.renewal: is required"
    for title, segment, renewal in [("A", "smb", "2026-03-01"), ("B", "enterprise", "2026-09-01")]:
        made = await api.post(
            "/v1/deals",
            json={"title": title, "custom_fields": {"segment": segment, "renewal": renewal}},
            headers=tenant.headers(),
        )
        assert made.status_code == 201, made.text
    found = await api.get(
        "/v1/deals",
        params={
            "filter": json.dumps(
                {
                    "or": [
                        {"field": "custom_fields.renewal", "op": "lt", "value": "2026-06-01"},
                        {"field": "custom_fields.segment", "op": "eq", "value": "none"},
                    ]
                }
            )
        },
        headers=tenant.headers(),
    )
    assert found.status_code == 422  # "none" is not an option of segment
    found = await api.get(
        "/v1/deals",
        params={
            "filter": json.dumps(
                {"field": "custom_fields.renewal", "op": "lt", "value": "2026-06-01"}
            ),
            "sort": "title",
        },
        headers=tenant.headers(),
    )
    assert [d["title"] for d in found.json()["data"]] == ["A"]
