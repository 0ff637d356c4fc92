"""/functions/v1/kommo-import and /v1/imports/kommo: admins connect a Kommo account
(checked with Kommo first; a bad token or an unknown subdomain is a 422 and stores
nothing; the token is never returned nor readable), start, follow, cancel and read
an import, which the kommo-import cron runs."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
import respx

from shared.db import Connection
from shared.imports.kommo import run as kommo_run
from shared.imports.kommo.client import TokenBucket
from shared.runtime import Runtime
from shared.settings import Settings
from tests.shared.billing.kit import put_on_plan
from tests.shared.imports.kommo.fake import FakeClock, FakeKommo
from tests.support import as_, auth, issue_key, make_org, make_user, member
from tests.support import principal as user

URL = "/functions/v1/kommo-import"
API = "/functions/v1/api/v1/imports/kommo"


@pytest.fixture(autouse=True)
def paced(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The runs' rate limiter on a clock of its own: paced, without waiting."""
    clock = FakeClock()
    monkeypatch.setattr(
        kommo_run, "TokenBucket", lambda: TokenBucket(clock=clock, sleep=clock.sleep)
    )
    return clock


async def _team(db: Connection) -> dict[str, UUID]:
    owner = await make_user(db, "owner@example.com")
    org = await make_org(db, owner)
    return {
        "org": org,
        "owner": owner,
        "admin": await member(db, org, "admin", "admin@example.com"),
        "agent": await member(db, org, "agent"),
    }


def _connect(team: dict[str, UUID], **body: Any) -> dict[str, Any]:
    return {"organization_id": str(team["org"]), "subdomain": "acme", "token": "x", **body}


@respx.mock
async def test_connect_checks_the_account_first_and_keeps_the_token_secret(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    runtime: Runtime,
    waits: list[float],
) -> None:
    team = await _team(db)
    kommo = FakeKommo()
    route = kommo.install()
    admin = auth(settings, team["admin"])

    bad = await client.post(f"{URL}/connect", json=_connect(team, token="expired"), headers=admin)
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"]["code"] == "kommo_bad_token"
    assert "401" in bad.json()["error"]["message"]

    respx.route(host="nosuch.kommo.com").mock(
        return_value=httpx.Response(404, json={"title": "Not Found", "status": 404})
    )
    unknown = await client.post(
        f"{URL}/connect", json=_connect(team, subdomain="nosuch"), headers=admin
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "kommo_unknown_subdomain"
    respx.route(host="gone.kommo.com").mock(side_effect=httpx.ConnectError("no such host"))
    gone = await client.post(f"{URL}/connect", json=_connect(team, subdomain="gone"), headers=admin)
    assert gone.json()["error"]["code"] == "kommo_unknown_subdomain", gone.text
    respx.route(host="other.kommo.com").mock(return_value=httpx.Response(200, json={"x": 1}))
    other = await client.post(
        f"{URL}/connect", json=_connect(team, subdomain="other"), headers=admin
    )
    assert (other.status_code, other.json()["error"]["code"]) == (422, "kommo_unknown_subdomain")
    calls = route.call_count
    malformed = await client.post(
        f"{URL}/connect", json=_connect(team, subdomain="ac_me!"), headers=admin
    )
    assert malformed.status_code == 422
    assert malformed.json()["error"]["code"] == "kommo_invalid_subdomain"
    agent = await client.post(
        f"{URL}/connect",
        json=_connect(team, token=kommo.token),
        headers=auth(settings, team["agent"]),
    )
    assert agent.status_code == 403
    key, _ = await issue_key(runtime, team["org"], team["owner"], ["read", "write"])
    by_key = await client.post(
        f"{API}/connect",
        json=_connect(team, token=kommo.token),
        headers={"Authorization": f"Bearer {key}"},
    )
    assert by_key.status_code == 403  # imports need a signed-in admin
    assert route.call_count == calls  # refused before Kommo was asked
    assert await db.fetchval("select count(*) from kommo_connections") == 0
    assert await db.fetchval("select count(*) from private.kommo_tokens") == 0

    connected = await client.post(
        f"{API}/connect",
        json=_connect(team, subdomain="Acme.kommo.com", token=kommo.token),
        headers=admin,
    )
    assert connected.status_code == 201, connected.text
    body = connected.json()
    assert body["subdomain"] == "acme" and body["account_id"] == 30123456
    assert body["account_name"] == "Acme Trading" and body["currency"] == "USD"
    assert kommo.token not in connected.text
    shown = await client.get(
        f"{URL}/connection", params={"organization_id": str(team["org"])}, headers=admin
    )
    assert shown.json() == body
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_(runtime, user(team["admin"]), "select token from private.kommo_tokens")


@respx.mock
async def test_admins_start_follow_cancel_and_read_a_report_the_cron_produced(
    client: httpx.AsyncClient, settings: Settings, db: Connection
) -> None:
    team = await _team(db)
    kommo = FakeKommo()
    kommo.install()
    admin = auth(settings, team["admin"])
    org = {"organization_id": str(team["org"])}
    missing = await client.post(f"{URL}/jobs", json=org, headers=admin)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "kommo_not_connected"
    await client.post(f"{URL}/connect", json=_connect(team, token=kommo.token), headers=admin)

    started = await client.post(f"{URL}/jobs", json=org, headers=admin)
    assert started.status_code == 201, started.text
    job = started.json()
    assert job["status"] == "pending" and job["options"] == {"full": False}
    again = await client.post(f"{API}/jobs", json=org, headers=admin)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "import_in_progress"
    as_agent = await client.get(f"{URL}/jobs/{job['id']}", headers=auth(settings, team["agent"]))
    assert as_agent.status_code == 404
    assert (await client.post(URL, headers=admin)).status_code == 401  # the cron's, only

    service = {"Authorization": f"Bearer {settings.service_key}"}
    ran = await client.post(URL, headers=service, params={"seconds": 30})
    assert ran.status_code == 200, ran.text
    assert ran.json()["completed"] == 1
    report = await client.get(f"{API}/jobs/{job['id']}/report", headers=admin)
    assert report.status_code == 200
    counts = report.json()["report"]["counts"]
    assert counts["contacts"] == {"created": 3, "updated": 0, "skipped": 1}
    assert counts["leads"] == {"created": 3, "updated": 0, "skipped": 0}
    listed = await client.get(f"{URL}/jobs", params=org, headers=admin)
    assert [j["status"] for j in listed.json()["data"]] == ["completed"]

    second = (await client.post(f"{URL}/jobs", json=org | {"full": True}, headers=admin)).json()
    cancelled = await client.post(f"{URL}/jobs/{second['id']}/cancel", json={}, headers=admin)
    assert cancelled.status_code == 200 and cancelled.json()["cancel_requested"]
    ran = await client.post(URL, headers=service)
    assert ran.json()["cancelled"] == 1
    status = await client.get(f"{API}/jobs/{second['id']}", headers=admin)
    assert status.json()["status"] == "cancelled"
    late = await client.post(f"{URL}/jobs/{second['id']}/cancel", headers=admin)
    assert late.status_code == 409
    # a plan without imports starts none
    await put_on_plan(db, team["org"], features=("api",))
    unpaid = await client.post(f"{URL}/jobs", json=org, headers=admin)
    assert unpaid.status_code == 402, unpaid.text
    assert unpaid.json()["error"]["details"]["feature"] == "imports"
