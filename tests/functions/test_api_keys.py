from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from uuid import UUID

import httpx
import pytest
from fastapi import APIRouter

from shared.db import Connection
from shared.runtime import Runtime
from shared.settings import Settings
from shared.web import AnyCaller, function_app
from tests.support import auth, make_org, make_user, member

URL = "/functions/v1/api-keys"


@pytest.fixture
async def org(db: Connection) -> dict[str, UUID]:
    owner = await make_user(db)
    org_id = await make_org(db, owner)
    return {
        "org": org_id,
        "owner": owner,
        "admin": await member(db, org_id, "admin"),
        "agent": await member(db, org_id, "agent"),
    }


async def create_key(
    client: httpx.AsyncClient, settings: Settings, org: dict[str, UUID], **body: object
) -> httpx.Response:
    payload = {
        "organization_id": str(org["org"]),
        "name": "Zapier",
        "scopes": ["read", "write"],
        **body,
    }
    return await client.post(URL, json=payload, headers=auth(settings, org["admin"]))


# An endpoint of the kit that accepts users and keys alike, to prove keys work everywhere.
probe = APIRouter()


@probe.get("/whoami")
async def whoami(caller: AnyCaller) -> dict[str, str]:
    return {"kind": type(caller).__name__}


@pytest.fixture
async def kit(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = function_app(probe, name="probe", runtime=runtime)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kit"
    ) as c:
        yield c


async def test_an_admin_gets_the_key_once_and_only_its_hash_is_stored(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    response = await create_key(client, settings, org)
    assert response.status_code == 201, response.text
    body = response.json()
    key = body["key"]
    assert key.startswith("cg_") and len(key) >= 3 + 43  # 32 random bytes, URL-safe
    assert body["prefix"] == key[:11]
    assert body["scopes"] == ["read", "write"]
    stored = await db.fetchval(
        "select hash from private.api_key_hashes where api_key_id = $1", UUID(body["id"])
    )
    assert stored == hashlib.sha256(key.encode()).digest()
    dump = await db.fetchval("select string_agg(to_jsonb(k)::text, '') from api_keys k")
    assert key not in dump

    listed = await client.get(
        URL, params={"organization_id": str(org["org"])}, headers=auth(settings, org["agent"])
    )
    assert listed.status_code == 200
    (row,) = listed.json()["data"]
    assert row["id"] == body["id"]
    assert "key" not in row and "hash" not in row


async def test_an_agent_cannot_create_api_keys(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    response = await client.post(
        URL,
        json={"organization_id": str(org["org"]), "name": "x"},
        headers=auth(settings, org["agent"]),
    )
    assert response.status_code == 403
    assert await db.fetchval("select count(*) from api_keys") == 0


async def test_unknown_scopes_are_a_422(
    client: httpx.AsyncClient, settings: Settings, org: dict[str, UUID]
):
    response = await create_key(client, settings, org, scopes=["admin"])
    assert response.status_code == 422


@pytest.mark.parametrize("style", ["bearer", "x-api-key"])
async def test_a_key_authenticates_and_a_revoked_key_is_refused_at_once(
    client: httpx.AsyncClient,
    kit: httpx.AsyncClient,
    settings: Settings,
    org: dict[str, UUID],
    style: str,
):
    created = (await create_key(client, settings, org)).json()
    headers = (
        {"Authorization": f"Bearer {created['key']}"}
        if style == "bearer"
        else {"X-API-Key": created["key"]}
    )
    ok = await kit.get("/whoami", headers=headers)
    assert ok.status_code == 200
    assert ok.json() == {"kind": "ApiKeyPrincipal"}

    revoked = await client.delete(f"{URL}/{created['id']}", headers=auth(settings, org["admin"]))
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None

    refused = await kit.get("/whoami", headers=headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"


async def test_an_unknown_key_is_a_401(kit: httpx.AsyncClient):
    response = await kit.get("/whoami", headers={"X-API-Key": "cg_" + "x" * 43})
    assert response.status_code == 401


async def test_last_used_at_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient,
    kit: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    org: dict[str, UUID],
):
    created = (await create_key(client, settings, org)).json()
    key_id = UUID(created["id"])
    headers = {"X-API-Key": created["key"]}
    assert (await kit.get("/whoami", headers=headers)).status_code == 200
    first = await db.fetchval("select last_used_at from api_keys where id = $1", key_id)
    assert first is not None
    for _ in range(5):
        await kit.get("/whoami", headers=headers)
    assert await db.fetchval("select last_used_at from api_keys where id = $1", key_id) == first

    await db.execute(
        "update api_keys set last_used_at = now() - interval '2 minutes' where id = $1", key_id
    )
    await kit.get("/whoami", headers=headers)
    assert await db.fetchval("select last_used_at from api_keys where id = $1", key_id) > first


async def test_revoking_needs_admin_and_another_orgs_key_is_not_found(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    created = (await create_key(client, settings, org)).json()
    by_agent = await client.delete(f"{URL}/{created['id']}", headers=auth(settings, org["agent"]))
    assert by_agent.status_code == 403

    stranger = await make_user(db)
    await make_org(db, stranger)
    by_stranger = await client.delete(f"{URL}/{created['id']}", headers=auth(settings, stranger))
    assert by_stranger.status_code == 404
    assert (
        await db.fetchval("select revoked_at from api_keys where id = $1", UUID(created["id"]))
        is None
    )


async def test_api_keys_cannot_manage_api_keys(
    client: httpx.AsyncClient, settings: Settings, org: dict[str, UUID]
):
    created = (await create_key(client, settings, org)).json()
    response = await client.post(
        URL,
        json={"organization_id": str(org["org"]), "name": "escalate"},
        headers={"X-API-Key": created["key"]},
    )
    assert response.status_code == 403
