"""The local Auth refuses bad requests as GoTrue does: its status, its error code, no
500, and nothing written."""

from __future__ import annotations

import time
from typing import Any
from uuid import uuid4

import httpx
import pytest

from shared.auth import mint_access_token
from shared.db import Connection
from shared.settings import Settings
from shared.tooling import local_auth
from shared.tooling.local_auth import LocalAuth

PASSWORD = "correct horse battery"
SIGNUP = "/auth/v1/signup"
PASSWORD_GRANT = "/auth/v1/token?grant_type=password"
REFRESH_GRANT = "/auth/v1/token?grant_type=refresh_token"


def anon(settings: Settings) -> dict[str, str]:
    return {"apikey": settings.local_key("anon")}


def service(settings: Settings) -> dict[str, str]:
    key = settings.service_key
    return {"apikey": key, "Authorization": f"Bearer {key}"}


async def written(db: Connection) -> tuple[int, ...]:
    row = await db.fetchrow(
        "select (select count(*) from auth.users), (select count(*) from auth.sessions),"
        " (select count(*) from auth.refresh_tokens), (select count(*) from auth.local_outbox)"
    )
    assert row is not None
    return tuple(row)


async def sign_up(settings: Settings, local: httpx.AsyncClient) -> dict[str, Any]:
    """A signed-up user's session."""
    response = await local.post(
        SIGNUP, json={"email": "ada@example.com", "password": PASSWORD}, headers=anon(settings)
    )
    assert response.status_code == 200, response.text
    session: dict[str, Any] = response.json()
    return session


@pytest.fixture
async def ada(settings: Settings, local: httpx.AsyncClient) -> dict[str, Any]:
    return await sign_up(settings, local)


BAD_REQUESTS = [
    (SIGNUP, {"password": PASSWORD}, 422, "validation_failed"),
    (SIGNUP, {"email": "ada@example.com"}, 422, "validation_failed"),
    (SIGNUP, {"email": "not-an-address", "password": PASSWORD}, 422, "validation_failed"),
    (SIGNUP, {"email": "bo@example.com", "password": "123"}, 422, "weak_password"),
    (SIGNUP, {"email": "ada@example.com", "password": PASSWORD}, 422, "user_already_exists"),
    (SIGNUP, {"email": "bo@example.com", "password": PASSWORD, "data": []}, 400, "bad_json"),
    (SIGNUP, ["not", "an", "object"], 400, "bad_json"),
    (
        PASSWORD_GRANT,
        {"email": "ada@example.com", "password": "wrong one"},
        400,
        "invalid_credentials",
    ),
    (
        PASSWORD_GRANT,
        {"email": "nobody@example.com", "password": PASSWORD},
        400,
        "invalid_credentials",
    ),
    (PASSWORD_GRANT, {"password": PASSWORD}, 400, "validation_failed"),
    (PASSWORD_GRANT, {"email": "ada@example.com"}, 400, "invalid_credentials"),
    (REFRESH_GRANT, {}, 400, "validation_failed"),
    (REFRESH_GRANT, {"refresh_token": "made-up"}, 400, "refresh_token_not_found"),
    ("/auth/v1/token?grant_type=client_credentials", {}, 400, "invalid_credentials"),
    ("/auth/v1/verify", {"type": "magiclink"}, 400, "validation_failed"),
    ("/auth/v1/verify", {"type": "magiclink", "token_hash": "nope"}, 403, "otp_expired"),
    ("/auth/v1/otp", {"email": "nobody@example.com", "create_user": False}, 422, "otp_disabled"),
    ("/auth/v1/nothing-here", {}, 404, "not_found"),
]


@pytest.mark.parametrize(("path", "body", "status", "code"), BAD_REQUESTS)
async def test_bad_requests_get_gotrue_errors_and_change_nothing(
    settings: Settings,
    local: httpx.AsyncClient,
    db: Connection,
    ada: dict[str, Any],
    path: str,
    body: Any,
    status: int,
    code: str,
):
    before = await written(db)
    response = await local.post(path, json=body, headers=anon(settings))
    assert response.status_code == status, response.text
    error = response.json()
    assert (error["code"], error["error_code"]) == (status, code)
    assert error["msg"]
    assert await written(db) == before


async def test_clients_of_the_2024_api_version_get_its_error_shape(
    settings: Settings, local: httpx.AsyncClient, ada: dict[str, Any]
):
    response = await local.post(
        PASSWORD_GRANT,
        json={"email": "ada@example.com", "password": "wrong one"},
        headers={**anon(settings), "X-Supabase-Api-Version": "2024-01-01"},
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_credentials",
        "message": "Invalid login credentials",
    }
    assert response.headers["x-supabase-api-version"] == "2024-01-01"


async def test_a_body_that_is_not_json_is_a_400(settings: Settings, local: httpx.AsyncClient):
    response = await local.post(SIGNUP, content=b"{not json", headers=anon(settings))
    assert (response.status_code, response.json()["error_code"]) == (400, "bad_json")


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "no_api_key"), ({"apikey": "someone-elses-key"}, "invalid_api_key")],
)
async def test_every_route_needs_the_apikey(
    local: httpx.AsyncClient, db: Connection, headers: dict[str, str], code: str
):
    before = await written(db)
    response = await local.post(
        SIGNUP, json={"email": "eve@example.com", "password": PASSWORD}, headers=headers
    )
    assert (response.status_code, response.json()["error_code"]) == (401, code)
    assert await written(db) == before


async def test_the_user_needs_a_valid_live_token(
    settings: Settings, local: httpx.AsyncClient, db: Connection, ada: dict[str, Any]
):
    missing = await local.get("/auth/v1/user", headers=anon(settings))
    assert (missing.status_code, missing.json()["error_code"]) == (401, "no_authorization")

    session_id = await db.fetchval("select id from auth.sessions")
    expired = mint_access_token(
        settings,
        user_id=ada["user"]["id"],
        email="ada@example.com",
        ttl_seconds=3600,
        session_id=session_id,
        now=int(time.time()) - 7200,
    )
    for token in (expired, settings.local_key("anon"), "not.a.jwt"):
        response = await local.get(
            "/auth/v1/user", headers={**anon(settings), "Authorization": f"Bearer {token}"}
        )
        assert (response.status_code, response.json()["error_code"]) == (403, "bad_jwt")

    stranger = mint_access_token(settings, user_id=uuid4(), email=None, session_id=uuid4())
    response = await local.get(
        "/auth/v1/user", headers={**anon(settings), "Authorization": f"Bearer {stranger}"}
    )
    assert (response.status_code, response.json()["error_code"]) == (403, "session_not_found")


@pytest.mark.parametrize(
    "path", ["/auth/v1/invite", "/auth/v1/admin/users", "/auth/v1/admin/generate_link"]
)
async def test_admin_routes_need_the_service_key(
    settings: Settings, local: httpx.AsyncClient, db: Connection, ada: dict[str, Any], path: str
):
    before = await written(db)
    body = {"email": "eve@example.com", "type": "invite"}
    as_user = {**anon(settings), "Authorization": f"Bearer {ada['access_token']}"}
    for headers, status, code in [
        (anon(settings), 401, "no_authorization"),
        (as_user, 403, "not_admin"),
    ]:
        response = await local.post(path, json=body, headers=headers)
        assert (response.status_code, response.json()["error_code"]) == (status, code)
    assert await written(db) == before


async def test_admin_routes_validate_their_input(
    settings: Settings, local: httpx.AsyncClient, db: Connection, ada: dict[str, Any]
):
    before = await written(db)
    for path, body, status, code in [
        ("/auth/v1/invite", {}, 422, "validation_failed"),
        ("/auth/v1/invite", {"email": "ada@example.com"}, 422, "email_exists"),
        ("/auth/v1/admin/users", {"email": "ada@example.com"}, 422, "email_exists"),
        ("/auth/v1/admin/generate_link", {"email": "x@example.com"}, 422, "validation_failed"),
        (
            "/auth/v1/admin/generate_link",
            {"type": "magiclink", "email": "nobody@example.com"},
            404,
            "user_not_found",
        ),
        (
            "/auth/v1/admin/generate_link",
            {"type": "signup", "email": "ada@example.com", "password": PASSWORD},
            422,
            "email_exists",
        ),
    ]:
        response = await local.post(path, json=body, headers=service(settings))
        assert (response.status_code, response.json()["error_code"]) == (status, code), path
    assert await written(db) == before


async def test_an_unconfirmed_user_cannot_sign_in_with_a_password(
    settings: Settings, local: httpx.AsyncClient, db: Connection
):
    made = await local.post(
        "/auth/v1/admin/users",
        json={"email": "cy@example.com", "password": PASSWORD},
        headers=service(settings),
    )
    assert made.status_code == 200, made.text
    before = await written(db)
    response = await local.post(
        PASSWORD_GRANT,
        json={"email": "cy@example.com", "password": PASSWORD},
        headers=anon(settings),
    )
    assert (response.status_code, response.json()["error_code"]) == (400, "email_not_confirmed")
    assert await written(db) == before


async def test_logout_ends_the_session_and_its_refresh_tokens(
    settings: Settings, local: httpx.AsyncClient, db: Connection, ada: dict[str, Any]
):
    bearer = {**anon(settings), "Authorization": f"Bearer {ada['access_token']}"}
    bad_scope = await local.post("/auth/v1/logout?scope=everyone", headers=bearer)
    assert (bad_scope.status_code, bad_scope.json()["error_code"]) == (400, "validation_failed")
    assert (await local.post("/auth/v1/logout?scope=local", headers=bearer)).status_code == 204
    assert await db.fetchval("select count(*) from auth.refresh_tokens") == 0
    refresh = await local.post(
        REFRESH_GRANT, json={"refresh_token": ada["refresh_token"]}, headers=anon(settings)
    )
    assert refresh.json()["error_code"] == "refresh_token_not_found"


async def test_a_browser_may_call_auth_from_another_origin(
    settings: Settings, local: httpx.AsyncClient
):
    response = await local.options(
        "/auth/v1/token",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "apikey, authorization, x-supabase-api-version",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "http://localhost:5173")
    # The page's supabase-js reads the error shape by X-Supabase-Api-Version: exposed.
    refused = await local.post(
        PASSWORD_GRANT,
        json={"email": "nobody@example.com", "password": PASSWORD},
        headers={**anon(settings), "Origin": "http://localhost:5173"},
    )
    assert refused.status_code == 400
    exposed = refused.headers["access-control-expose-headers"].lower().split(", ")
    assert "x-supabase-api-version" in exposed


async def test_updating_the_user_validates_and_changes_nothing_on_refusal(
    settings: Settings, local: httpx.AsyncClient, db: Connection, ada: dict[str, Any]
):
    bearer = {**anon(settings), "Authorization": f"Bearer {ada['access_token']}"}
    stored = "select encrypted_password, raw_user_meta_data from auth.users"
    before = await db.fetchrow(stored)
    for body, code in [
        ({"password": "123"}, "weak_password"),
        ({"email": "other@example.com"}, "validation_failed"),
        ({"data": "not an object", "password": "a new long one"}, "bad_json"),
    ]:
        response = await local.put("/auth/v1/user", json=body, headers=bearer)
        assert response.status_code in (400, 422), response.text
        assert response.json()["error_code"] == code
    assert await db.fetchrow(stored) == before
    no_token = await local.put("/auth/v1/user", json={"password": "x" * 10}, headers=anon(settings))
    assert no_token.status_code == 401


async def test_before_the_runtime_opens_auth_answers_503(settings: Settings):
    auth = LocalAuth(settings, lambda: None)
    transport = httpx.ASGITransport(app=auth)
    async with httpx.AsyncClient(transport=transport, base_url=settings.supabase_url) as client:
        response = await client.post(
            SIGNUP, json={"email": "ada@example.com", "password": PASSWORD}, headers=anon(settings)
        )
    assert response.status_code == 503
    assert response.json()["error_code"] == "unexpected_failure"


async def test_a_fault_of_ours_is_a_logged_500_in_gotrue_shape(
    settings: Settings,
    local: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    async def broken(call: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setitem(local_auth.ROUTES, ("POST", "/signup"), broken)
    response = await local.post(
        SIGNUP, json={"email": "ada@example.com", "password": PASSWORD}, headers=anon(settings)
    )
    assert response.status_code == 500
    assert response.json() == {
        "code": 500,
        "error_code": "unexpected_failure",
        "msg": "Unexpected failure",
    }
    assert "a bug" not in response.text
    assert "local Auth failed on POST /signup" in caplog.text
