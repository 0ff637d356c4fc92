"""/v1/business-hours, /v1/sla-policies and /v1/conversations/{id}/sla: managers (write
keys) write, read keys read, bad input is a 4xx naming the problem and saves nothing,
another organization's records are not found."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from shared.db import Connection
from shared.events.base import Event
from shared.runtime import Runtime
from shared.sla.consumer import apply_event
from tests.functions.api.conftest import Tenant, error_of
from tests.support import as_, make_channel_account, make_conversation, principal

WEEK = {
    "mon": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}],
    "sat": [{"start": "00:00", "end": "24:00"}],
}


async def test_business_hours_are_written_by_managers_and_read_by_members(
    api: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, db: Connection
):
    body = {
        "timezone": "Australia/Lord_Howe",
        "weekly": WEEK,
        "holidays": [{"date": "2026-12-25", "recurring": True, "name": "Christmas"}],
    }
    refused = await api.post(
        "/v1/business-hours", json=body, headers=tenant.headers(read_only=True)
    )
    assert refused.status_code == 403
    created = await api.post("/v1/business-hours", json=body, headers=tenant.headers())
    assert created.status_code == 201, created.text
    hours = created.json()
    assert hours["weekly"]["mon"][1] == {"start": "13:00", "end": "17:00"}
    assert hours["channel_account_id"] is None
    again = await api.post("/v1/business-hours", json=body, headers=tenant.headers())
    assert again.status_code == 409
    listed = await api.get("/v1/business-hours", headers=tenant.headers(read_only=True))
    assert [h["id"] for h in listed.json()["data"]] == [hours["id"]]
    # an agent reads them through PostgREST, and cannot change them
    agent = principal(tenant.agent)
    (row,) = await as_(runtime, agent, "select timezone from business_hours")
    assert row["timezone"] == "Australia/Lord_Howe"
    assert await as_(runtime, agent, "update business_hours set name = 'x' returning id") == []

    patched = await api.patch(
        f"/v1/business-hours/{hours['id']}",
        json={"timezone": "Europe/Berlin", "holidays": []},
        headers=tenant.headers(),
    )
    assert (patched.json()["timezone"], patched.json()["holidays"]) == ("Europe/Berlin", [])
    gone = await api.delete(f"/v1/business-hours/{hours['id']}", headers=tenant.headers())
    assert gone.status_code == 204
    assert (
        await api.get(f"/v1/business-hours/{hours['id']}", headers=tenant.headers())
    ).status_code == 404


BAD_HOURS: list[tuple[dict[str, Any], str]] = [
    ({"timezone": "Mars/Olympus_Mons", "weekly": WEEK}, "unknown timezone"),
    ({"timezone": "../../etc/passwd", "weekly": WEEK}, "unknown timezone"),
    (
        {
            "timezone": "UTC",
            "weekly": {
                "mon": [{"start": "09:00", "end": "13:00"}, {"start": "12:00", "end": "17:00"}]
            },
        },
        "overlap",
    ),
    ({"timezone": "UTC", "weekly": {"mon": [{"start": "17:00", "end": "09:00"}]}}, "end after"),
    ({"timezone": "UTC", "weekly": {"mon": [{"start": "9", "end": "17:00"}]}}, "HH:MM"),
    ({"timezone": "UTC", "weekly": {"mon": [{"start": "09:00", "end": "24:01"}]}}, "HH:MM"),
    ({"timezone": "UTC", "weekly": {"someday": []}}, "weekly"),
    ({"timezone": "UTC", "weekly": WEEK, "holidays": [{"date": "2026-02-30"}]}, "date"),
]


@pytest.mark.parametrize(("body", "problem"), BAD_HOURS)
async def test_bad_business_hours_are_refused_and_nothing_is_saved(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection, body: dict[str, Any], problem: str
):
    answer = await api.post("/v1/business-hours", json=body, headers=tenant.headers())
    assert answer.status_code == 422
    assert problem in answer.text
    assert await db.fetchval("select count(*) from business_hours") == 0


async def test_another_organizations_channel_account_is_refused(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    theirs = await make_channel_account(db, other.org)
    for path, body in (
        (
            "/v1/business-hours",
            {"timezone": "UTC", "weekly": WEEK, "channel_account_id": str(theirs)},
        ),
        ("/v1/sla-policies", {"name": "P", "is_default": True, "channel_account_id": str(theirs)}),
    ):
        answer = await api.post(path, json=body, headers=tenant.headers())
        assert answer.status_code == 422, answer.text
        assert error_of(answer)["details"][0]["field"] == "channel_account_id"
    assert await db.fetchval("select count(*) from business_hours") == 0
    assert await db.fetchval("select count(*) from sla_policies") == 0


async def test_sla_policies_crud_defaults_and_bad_targets(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    account = await make_channel_account(db, tenant.org)
    body = {"name": "Gold", "first_response_seconds": 900, "resolution_seconds": 86400}
    made = await api.post(
        "/v1/sla-policies", json=body | {"is_default": True}, headers=tenant.headers()
    )
    assert made.status_code == 201, made.text
    gold = made.json()
    assert (gold["is_default"], gold["next_response_seconds"]) == (True, None)
    second = await api.post(
        "/v1/sla-policies", json=body | {"is_default": True}, headers=tenant.headers()
    )
    assert second.status_code == 409 and "default" in second.text
    # a channel account has a default of its own
    per_account = await api.post(
        "/v1/sla-policies",
        json={"name": "WhatsApp", "is_default": True, "channel_account_id": str(account)},
        headers=tenant.headers(),
    )
    assert per_account.status_code == 201, per_account.text
    for bad, field in (
        ({"name": "x", "first_response_seconds": -5}, "first_response_seconds"),
        ({"name": "x", "resolution_seconds": 0}, "resolution_seconds"),
        ({"name": "x", "channel_account_id": str(account)}, "channel_account_id"),
        ({"name": "", "first_response_seconds": 60}, "name"),
        ({"name": "x", "surprise": 1}, "surprise"),
    ):
        answer = await api.post("/v1/sla-policies", json=bad, headers=tenant.headers())
        assert answer.status_code == 422, (bad, answer.text)
        assert field in answer.text
    assert await db.fetchval("select count(*) from sla_policies") == 2

    changed = await api.patch(
        f"/v1/sla-policies/{gold['id']}",
        json={"next_response_seconds": 1800, "is_default": False},
        headers=tenant.headers(),
    )
    assert (changed.json()["next_response_seconds"], changed.json()["is_default"]) == (1800, False)
    read = await api.get(f"/v1/sla-policies/{gold['id']}", headers=tenant.headers(read_only=True))
    assert read.json()["next_response_seconds"] == 1800
    assert len((await api.get("/v1/sla-policies", headers=tenant.headers())).json()["data"]) == 2
    # another organization's key finds nothing of it
    assert (
        await api.get(f"/v1/sla-policies/{gold['id']}", headers=other.headers())
    ).status_code == 404
    assert (
        await api.patch(
            f"/v1/sla-policies/{gold['id']}", json={"name": "y"}, headers=other.headers()
        )
    ).status_code == 404
    assert (
        await api.delete(f"/v1/sla-policies/{gold['id']}", headers=other.headers())
    ).status_code == 404
    assert (
        await api.delete(f"/v1/sla-policies/{gold['id']}", headers=tenant.headers())
    ).status_code == 204


async def test_a_conversations_sla_is_readable_by_its_organization_only(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    policy = await db.fetchval(
        "insert into sla_policies (organization_id, name, is_default, first_response_seconds)"
        " values ($1, 'P', true, 60) returning id",
        tenant.org,
    )
    conversation = await make_conversation(db, tenant.org)
    account = await db.fetchval(
        "select channel_account_id from conversations where id = $1", conversation
    )
    event_id = await db.fetchval(
        "insert into outbox_events (organization_id, event_type, payload) values ($1,"
        " 'message.received', '{}') returning id",
        tenant.org,
    )
    created = await db.fetchval("select now()")
    event = Event(
        id=event_id,
        organization_id=tenant.org,
        type="message.received",
        aggregate_id=None,
        payload={
            "conversation_id": str(conversation),
            "channel_account_id": str(account),
            "sender_type": "contact",
        },
        created_at=created,
    )
    async with db.transaction():
        await apply_event(db, event)
    answer = await api.get(
        f"/v1/conversations/{conversation}/sla", headers=tenant.headers(read_only=True)
    )
    assert answer.status_code == 200, answer.text
    state = answer.json()
    assert state["policy_id"] == str(policy)
    running = state["running"]["first_response"]
    assert (running["met"], running["breached"], running["outcome"]) == (False, False, None)
    assert state["running"]["next_response"] is None
    assert [c["kind"] for c in state["clocks"]] == ["resolution", "first_response"]
    theirs = await api.get(f"/v1/conversations/{conversation}/sla", headers=other.headers())
    assert theirs.status_code == 404


@pytest.mark.parametrize(
    ("weekly", "holidays"),
    [
        ({"mon": [{"start": "10:00", "end": "09:00"}]}, []),
        ({"mon": [{"start": "25:00", "end": "26:00"}]}, []),
        ({"funday": []}, []),
        ({"mon": "all day"}, []),
        ({"mon": [{"start": "09:00", "end": "17:00"}]}, [{"date": "Christmas", "recurring": True}]),
        ({"mon": [{"start": "09:00", "end": "17:00"}]}, [{"date": "2026-12-25"}]),
    ],
)
async def test_the_database_refuses_malformed_hours_written_past_the_api(
    runtime: Runtime, tenant: Tenant, db: Connection, weekly: Any, holidays: Any
):
    # the owner of the organization, through PostgREST
    with pytest.raises(asyncpg.CheckViolationError):
        await as_(
            runtime,
            principal(tenant.owner),
            "insert into business_hours (organization_id, name, timezone, weekly, holidays)"
            " values ($1, 'x', 'UTC', $2, $3)",
            tenant.org,
            weekly,
            holidays,
        )
    good = {"mon": [{"start": "09:00", "end": "24:00"}]}
    made = await as_(
        runtime,
        principal(tenant.owner),
        "insert into business_hours (organization_id, name, timezone, weekly, holidays)"
        " values ($1, 'x', 'UTC', $2, $3) returning id",
        tenant.org,
        good,
        [{"date": "2026-12-25", "recurring": False}],
    )
    assert len(made) == 1


async def test_bad_updates_are_refused_and_change_nothing(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection
):
    hours = await api.post(
        "/v1/business-hours", json={"timezone": "UTC", "weekly": WEEK}, headers=tenant.headers()
    )
    policy = await api.post(
        "/v1/sla-policies", json={"name": "P", "resolution_seconds": 60}, headers=tenant.headers()
    )
    overlapping = {"mon": [{"start": "09:00", "end": "10:00"}, {"start": "09:30", "end": "11:00"}]}
    for path, body, problem in (
        (f"/v1/business-hours/{hours.json()['id']}", {"weekly": overlapping}, "overlap"),
        (f"/v1/business-hours/{hours.json()['id']}", {"timezone": "Europe/Atlantis"}, "timezone"),
        (f"/v1/sla-policies/{policy.json()['id']}", {"resolution_seconds": -1}, "resolution"),
        (f"/v1/sla-policies/{policy.json()['id']}", {"name": None}, "name"),
    ):
        answer = await api.patch(path, json=body, headers=tenant.headers())
        assert answer.status_code == 422, (body, answer.text)
        assert problem in answer.text
    row = await db.fetchrow("select timezone, weekly from business_hours")
    assert (row["timezone"], row["weekly"]) == ("UTC", WEEK)
    assert await db.fetchval("select resolution_seconds from sla_policies") == 60
