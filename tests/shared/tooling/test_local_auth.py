"""The local Auth signs with ES256 and publishes its key where Supabase Auth does."""

from __future__ import annotations

from uuid import uuid4

import httpx
import jwt
import pytest
from pydantic import SecretStr

from shared.auth import mint_access_token
from shared.db import Connection
from shared.runtime import Runtime
from shared.settings import Settings
from shared.tooling.gateway import Gateway
from tests.support import auth, make_org, make_user

JWKS = "/auth/v1/.well-known/jwks.json"


async def test_the_gateway_publishes_the_key_local_tokens_are_signed_with(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    response = await client.get(JWKS)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=600"
    [key] = response.json()["keys"]
    assert {key["kty"], key["crv"], key["alg"], key["use"]} == {"EC", "P-256", "ES256", "sig"}
    assert "d" not in key  # the public part only
    token = auth(settings, await make_user(db))["Authorization"].removeprefix("Bearer ")
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"]) == ("ES256", key["kid"])


async def test_a_local_token_is_verified_by_the_jwks_the_gateway_serves(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, db: Connection
):
    owner = await make_user(db)
    org = await make_org(db, owner)
    response = await client.get(
        "/functions/v1/api-keys",
        params={"organization_id": str(org)},
        headers=auth(settings, owner),
    )
    assert response.status_code == 200
    assert runtime.jwks._fetched_at is not None  # fetched over HTTP, not taken in process


async def test_only_get_reads_the_jwks(client: httpx.AsyncClient):
    response = await client.post(JWKS, json={})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_outside_local_mode_there_is_no_local_key(database_url: str):
    production = Settings(
        mode="production",
        database_url=database_url,
        service_role_key=SecretStr("k"),
        cors_origins=["https://app.example.com"],
        _env_file=None,  # type: ignore[call-arg]
    )
    transport = httpx.ASGITransport(app=Gateway(production))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as gateway:
        assert (await gateway.get(JWKS)).status_code == 404
    with pytest.raises(RuntimeError, match="outside local mode"):
        mint_access_token(production, user_id=uuid4(), email=None)
