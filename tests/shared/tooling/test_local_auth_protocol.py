"""Garbage at the local Auth's protocol: wrong types, bodies that are not JSON or too
big, values PostgreSQL cannot store, forged and expired tokens on every route that
takes one, routes that do not exist. Each is a 4xx in GoTrue's error shape
(`{"code", "error_code", "msg"}`), never a 5xx, and nothing is written.

Since nothing is written, the module shares one database, one user and one warm
pool (tests/conftest.py, `module_database_url`)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec

from shared.auth import local_jwks, mint_access_token
from shared.db import Connection
from shared.runtime import Runtime
from shared.settings import LOCAL_JWT_SECRET, Settings
from shared.tooling.gateway import Gateway
from tests.shared.tooling.test_local_auth_errors import (
    PASSWORD,
    PASSWORD_GRANT,
    REFRESH_GRANT,
    SIGNUP,
    anon,
    service,
    sign_up,
    written,
)
from tests.support import module_runtime_fixtures

pytestmark = pytest.mark.asyncio(loop_scope="module")


runtime, db = module_runtime_fixtures()


@pytest.fixture(scope="module")
def settings(runtime: Runtime) -> Settings:
    return runtime.settings


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=Gateway(runtime.settings, runtime=runtime))
    async with httpx.AsyncClient(transport=transport, base_url=runtime.settings.supabase_url) as c:
        yield c


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ada(settings: Settings, local: httpx.AsyncClient) -> dict[str, Any]:
    return await sign_up(settings, local)


def gotrue_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "error_code", "msg"}, body
    assert (body["code"], body["error_code"]) == (status, code)
    assert isinstance(body["msg"], str) and body["msg"]


WRONG_TYPES = [
    (SIGNUP, {"email": 42, "password": PASSWORD}),
    (SIGNUP, {"email": "bo@example.com", "password": 123456789}),
    (SIGNUP, {"email": ["bo@example.com"], "password": PASSWORD}),
    (PASSWORD_GRANT, {"email": {"$ne": ""}, "password": PASSWORD}),
    (PASSWORD_GRANT, {"email": "ada@example.com", "password": True}),
    (REFRESH_GRANT, {"refresh_token": 12345}),
    ("/auth/v1/otp", {"email": "ada@example.com", "create_user": "false"}),
    ("/auth/v1/verify", {"type": 1, "token_hash": "abc"}),
]


@pytest.mark.parametrize(("path", "body"), WRONG_TYPES)
async def test_a_field_of_the_wrong_type_is_bad_json(
    settings: Settings,
    local: httpx.AsyncClient,
    db: Connection,
    ada: dict[str, Any],
    path: str,
    body: Any,
):
    before = await written(db)
    gotrue_error(await local.post(path, json=body, headers=anon(settings)), 400, "bad_json")
    assert await written(db) == before


MISSING = [
    (SIGNUP, b"null", 422, "validation_failed"),  # Go decodes null into an empty struct
    (PASSWORD_GRANT, b"{}", 400, "validation_failed"),
    (REFRESH_GRANT, b'{"refresh_token": null}', 400, "validation_failed"),
    ("/auth/v1/otp", b"{}", 422, "validation_failed"),
    ("/auth/v1/verify", b"{}", 400, "validation_failed"),
    ("/auth/v1/token", b"{}", 400, "invalid_credentials"),  # no grant_type
    ("/auth/v1/token?grant_type=PASSWORD", b"{}", 400, "invalid_credentials"),
    ("/auth/v1/token?grant_type=pkce", b"{}", 400, "invalid_credentials"),
]
MALFORMED = [
    b"",
    b"{",
    b'{"email": "bo@example.com",}',
    b"\xff\xfe{}",
    b"[" * 5000 + b"]" * 5000,
    b'{"email": "bo@example.com", "password": "' + PASSWORD.encode() + b'", "data": {"n": NaN}}',
]
UNSTORABLE = [
    {"email": "bo\u0000@example.com", "password": PASSWORD},
    {"email": "bo@example.com", "password": "\ud800\ud800\ud800\ud800\ud800\ud800"},
    {"email": "bo@example.com", "password": PASSWORD, "data": {"n\u0000": 1}},
]


@pytest.mark.parametrize(
    ("path", "raw", "status", "code"),
    [
        *MISSING,
        *[(SIGNUP, raw, 400, "bad_json") for raw in MALFORMED],
        *[(SIGNUP, json.dumps(body).encode(), 400, "validation_failed") for body in UNSTORABLE],
        (
            SIGNUP,
            b'{"email": "bo@example.com", "password": "long enough", "data": {"n": 1e999}}',
            400,
            "validation_failed",
        ),
    ],
)
async def test_missing_malformed_and_unstorable_bodies_are_refused(
    settings: Settings,
    local: httpx.AsyncClient,
    db: Connection,
    ada: dict[str, Any],
    path: str,
    raw: bytes,
    status: int,
    code: str,
):
    before = await written(db)
    headers = {**anon(settings), "Content-Type": "application/json"}
    gotrue_error(await local.post(path, content=raw, headers=headers), status, code)
    assert await written(db) == before


async def test_a_body_over_a_mebibyte_is_a_413_declared_or_streamed(
    settings: Settings, local: httpx.AsyncClient, db: Connection
):
    huge = b'{"email": "bo@example.com", "password": "long enough", "data": {"x": "'
    huge += b"x" * (1 << 20) + b'"}}'

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read until too much
        for start in range(0, len(huge), 1 << 16):
            yield huge[start : start + (1 << 16)]

    before = await written(db)
    declared = await local.post(SIGNUP, content=huge, headers=anon(settings))
    gotrue_error(declared, 413, "request_entity_too_large")
    streamed = await local.post(SIGNUP, content=chunks(), headers=anon(settings))
    assert "content-length" not in streamed.request.headers
    gotrue_error(streamed, 413, "request_entity_too_large")
    assert await written(db) == before


def bad_tokens(settings: Settings, ada: dict[str, Any]) -> dict[str, str]:
    """Tokens no one may act with, each named by what is wrong with it."""
    claims = jwt.decode(ada["access_token"], options={"verify_signature": False})
    [key] = local_jwks(settings)["keys"]
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    head, payload, signature = ada["access_token"].split(".")
    other = mint_access_token(settings, user_id=uuid4(), email=None)
    return {
        "expired": mint_access_token(
            settings,
            user_id=claims["sub"],
            email="ada@example.com",
            ttl_seconds=60,
            session_id=claims["session_id"],
            now=int(time.time()) - 3600,
        ),
        "signed by another key under our kid": jwt.encode(
            claims, stranger_key, algorithm="ES256", headers={"kid": key["kid"]}
        ),
        "unsigned (alg none)": jwt.encode(claims, None, algorithm="none"),
        "HS256 with the local JWT secret": jwt.encode(claims, LOCAL_JWT_SECRET, algorithm="HS256"),
        "another token's signature": f"{head}.{payload}.{other.split('.')[2]}",
        "the service_role key": settings.service_key,
        "not a JWT": "not.a.jwt",
        "non-ASCII": "é" * 20,
        "truncated": f"{head}.{payload}.{signature[:10]}",
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/auth/v1/user"), ("PUT", "/auth/v1/user"), ("POST", "/auth/v1/logout")],
)
async def test_forged_and_expired_tokens_are_403_bad_jwt(
    settings: Settings,
    local: httpx.AsyncClient,
    db: Connection,
    ada: dict[str, Any],
    method: str,
    path: str,
):
    before = await written(db)
    for name, token in bad_tokens(settings, ada).items():
        response = await local.request(
            method,
            path,
            json={"data": {"name": "Eve"}},
            # as bytes: a header may carry any byte, decoded as Latin-1 on the way in
            headers={**anon(settings), "Authorization": f"Bearer {token}".encode("latin-1")},
        )
        assert response.json().get("error_code") == "bad_jwt", name
        gotrue_error(response, 403, "bad_jwt")
    for authorization in ("Bearer", "Bearer ", "Basic abc", ada["access_token"]):
        response = await local.request(
            method, path, json={}, headers={**anon(settings), "Authorization": authorization}
        )
        gotrue_error(response, 401, "no_authorization")
    assert await written(db) == before
    assert await db.fetchval("select raw_user_meta_data from auth.users") == {}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/auth/v1/admin/users"),
        ("GET", "/auth/v1/admin"),
        ("POST", "/auth/v1/admin/nothing"),
        ("PUT", "/auth/v1/admin/users/00000000-0000-0000-0000-000000000000"),
        ("DELETE", "/auth/v1/admin/users/00000000-0000-0000-0000-000000000000"),
        ("GET", "/auth/v1/admin/generate_link"),
        ("DELETE", "/auth/v1/user"),
    ],
)
async def test_unknown_routes_are_404_with_or_without_keys(
    settings: Settings, local: httpx.AsyncClient, db: Connection, method: str, path: str
):
    before = await written(db)
    for headers in (service(settings), anon(settings), {}):
        response = await local.request(method, path, json={}, headers=headers)
        gotrue_error(response, 404, "not_found")
    assert await written(db) == before


async def test_keys_and_query_strings_of_any_bytes_are_refused_cleanly(
    settings: Settings, local: httpx.AsyncClient, db: Connection
):
    before = await written(db)
    body = {"email": "bo@example.com", "password": PASSWORD}
    odd_key = await local.post(SIGNUP, json=body, headers={"apikey": "clé-é".encode("latin-1")})
    gotrue_error(odd_key, 401, "invalid_api_key")
    odd_bearer = {**anon(settings), "Authorization": "Bearer clé-é".encode("latin-1")}
    gotrue_error(
        await local.post("/auth/v1/invite", json=body, headers=odd_bearer), 403, "not_admin"
    )
    for path in ("/auth/v1/otp?redirect_to=%00", "/auth/v1/verify?type=magiclink&token=a%00b"):
        response = await local.post(path, json=body, headers=anon(settings))
        gotrue_error(response, 400, "validation_failed")
    clicked = await local.get("/auth/v1/verify?type=magiclink&token=%00")
    gotrue_error(clicked, 400, "validation_failed")
    assert await written(db) == before
