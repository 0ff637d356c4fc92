"""/functions/v1/kommo-import/oauth: an admin connects Kommo by OAuth 2.0 (the consent
page, then the code Kommo sent back exchanged at the account's token endpoint).
The state binds the admin and the organization; a forged, foreign or stale state, a
refused code or a referer that is not a Kommo account stores nothing; the tokens are
never returned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx
import pytest
import respx

from shared.db import Connection
from shared.imports.kommo import oauth
from shared.settings import Settings
from tests.shared.imports.kommo.fake import FakeKommo
from tests.shared.imports.kommo.kit import register_integration
from tests.support import auth, make_org, make_user, member

URL = "/functions/v1/kommo-import"


@pytest.fixture
def kommo(monkeypatch: pytest.MonkeyPatch) -> FakeKommo:
    """A Kommo account, and this server registered as its public integration."""
    fake = FakeKommo()
    register_integration(monkeypatch, fake)
    return fake


async def _team(db: Connection) -> dict[str, UUID]:
    owner = await make_user(db)
    org = await make_org(db, owner)
    return {"org": org, "owner": owner, "admin": await member(db, org, "admin")}


async def _start(client: httpx.AsyncClient, headers: dict[str, str], org: UUID) -> str:
    started = await client.post(
        f"{URL}/oauth/start", json={"organization_id": str(org)}, headers=headers
    )
    assert started.status_code == 200, started.text
    url = urlsplit(started.json()["url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://www.kommo.com/oauth"
    query = parse_qs(url.query)
    assert query["client_id"] == [FakeKommo.client_id]
    return str(query["state"][0])


async def _consented(
    client: httpx.AsyncClient, settings: Settings, db: Connection, kommo: FakeKommo
) -> tuple[dict[str, UUID], dict[str, str], dict[str, str]]:
    """An admin who started connecting and consented at Kommo: (the team, the admin's
    headers, the callback body as Kommo sent the admin back)."""
    team = await _team(db)
    kommo.codes.add("code-1")
    admin = auth(settings, team["admin"])
    state = await _start(client, admin, team["org"])
    return team, admin, {"code": "code-1", "referer": "acme.kommo.com", "state": state}


async def _stored(db: Connection, org: UUID) -> dict[str, Any] | None:
    row = await db.fetchrow(
        "select c.auth, t.token, t.refresh_token, t.expires_at from kommo_connections c"
        " join private.kommo_tokens t using (organization_id) where c.organization_id = $1",
        org,
    )
    return dict(row) if row else None


@respx.mock
async def test_an_admin_connects_by_oauth_and_the_tokens_stay_private(
    client: httpx.AsyncClient, settings: Settings, db: Connection, kommo: FakeKommo
) -> None:
    kommo.install()
    team, admin, callback = await _consented(client, settings, db, kommo)
    connected = await client.post(f"{URL}/oauth/callback", json=callback, headers=admin)
    assert connected.status_code == 201, connected.text
    body = connected.json()
    assert (body["auth"], body["subdomain"], body["account_id"]) == ("oauth", "acme", 30123456)
    assert "access-1" not in connected.text and "refresh-1" not in connected.text
    grant = kommo.requests[0]
    assert (grant["path"], grant["body"]["grant_type"]) == (
        "oauth2/access_token",
        "authorization_code",
    )
    assert grant["body"]["client_secret"] == kommo.client_secret
    assert grant["body"]["redirect_uri"] == kommo.redirect_uri
    assert kommo.paths()[1:] == [("account", 1)]  # checked with the new access token
    stored = await _stored(db, team["org"])
    assert stored is not None
    assert (stored["auth"], stored["token"], stored["refresh_token"]) == (
        "oauth",
        "access-1",
        "refresh-1",
    )
    in_a_day = datetime.now(UTC) + timedelta(days=1)
    assert abs(stored["expires_at"] - in_a_day) < timedelta(minutes=1)

    again = await client.post(f"{URL}/oauth/callback", json=callback, headers=admin)
    assert again.status_code == 422
    assert again.json()["error"]["code"] == "kommo_oauth_refused"
    assert await _stored(db, team["org"]) == stored  # nothing changed


@respx.mock(assert_all_called=False)
async def test_a_forged_foreign_or_stale_state_or_a_foreign_referer_stores_nothing(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    kommo: FakeKommo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    route = kommo.install()
    team, admin, consented = await _consented(client, settings, db, kommo)
    owner = auth(settings, team["owner"])
    state = consented["state"]

    def callback(**changes: str) -> dict[str, str]:
        return consented | changes

    async def refused(headers: dict[str, str], body: dict[str, str]) -> str:
        answer = await client.post(f"{URL}/oauth/callback", json=body, headers=headers)
        assert answer.status_code == 422, answer.text
        return str(answer.json()["error"]["code"])

    forged = state[:-2] + ("AA" if not state.endswith("AA") else "BB")
    assert await refused(admin, callback(state=forged)) == "kommo_oauth_bad_state"
    assert await refused(admin, callback(state="not-a-state")) == "kommo_oauth_bad_state"
    assert await refused(owner, callback()) == "kommo_oauth_bad_state"  # the admin's state
    for referer in ("evil.example", "acme.kommo.com.evil.example", "https://10.0.0.1/"):
        assert await refused(admin, callback(referer=referer)) == "kommo_invalid_subdomain"
    monkeypatch.setattr(oauth, "STATE_TTL", -60)
    stale = await _start(client, admin, team["org"])
    assert await refused(admin, callback(state=stale)) == "kommo_oauth_expired"
    agent = auth(settings, await member(db, team["org"], "agent"))
    denied = await client.post(
        f"{URL}/oauth/start", json={"organization_id": str(team["org"])}, headers=agent
    )
    assert denied.status_code == 403
    assert route.call_count == 0 and kommo.codes == {"code-1"}  # Kommo was never asked
    assert await _stored(db, team["org"]) is None


async def test_without_an_integration_oauth_is_a_clear_503(
    client: httpx.AsyncClient, settings: Settings, db: Connection
) -> None:
    team = await _team(db)
    answer = await client.post(
        f"{URL}/oauth/start",
        json={"organization_id": str(team["org"])},
        headers=auth(settings, team["admin"]),
    )
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "kommo_oauth_not_configured"


@respx.mock
async def test_a_token_answer_without_tokens_is_a_503_and_stores_nothing(
    client: httpx.AsyncClient, settings: Settings, db: Connection, kommo: FakeKommo
) -> None:
    kommo.install()
    kommo.failures[("oauth2/access_token", 1)] = [
        httpx.Response(200, json={"token_type": "Bearer", "expires_in": 86400})
    ]
    team, admin, callback = await _consented(client, settings, db, kommo)
    answer = await client.post(f"{URL}/oauth/callback", json=callback, headers=admin)
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "kommo_unavailable"
    assert await _stored(db, team["org"]) is None
