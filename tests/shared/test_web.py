"""The function kit: authentication, validation, body limits and the error shape."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import jwt
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, Field

from shared.errors import Conflict
from shared.runtime import Runtime
from shared.settings import LOCAL_JWT_SECRET
from shared.web import CurrentUser, RuntimeDep, ServiceCaller, function_app


class Contact(BaseModel):
    name: str = Field(min_length=1)
    age: int


router = APIRouter()


@router.get("/me")
async def me(user: CurrentUser) -> dict[str, str]:
    return {"user_id": str(user.user_id)}


@router.post("/contacts")
async def create(contact: Contact) -> dict[str, str]:
    return {"name": contact.name}


@router.post("/echo")
async def echo(body: dict[str, object]) -> dict[str, object]:
    return body


@router.get("/conflict")
async def conflict() -> None:
    raise Conflict("Already there", details={"id": "x"})


@router.get("/unique")
async def unique(runtime: RuntimeDep) -> None:
    async with runtime.db.service_tx() as conn:
        await conn.execute("create temp table t (k int primary key)")
        await conn.execute("insert into t values (1), (1)")


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("bug")


@router.get("/cron")
async def cron(_: ServiceCaller) -> dict[str, bool]:
    return {"ok": True}


@pytest.fixture
async def kit(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    runtime.settings.max_body_bytes = 1024
    app = function_app(router, name="kit", runtime=runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit") as client:
        yield client


def token(**overrides: object) -> str:
    claims: dict[str, object] = {
        "sub": str(uuid4()),
        "role": "authenticated",
        "aud": "authenticated",
        "exp": int(time.time()) + 86_400,  # valid however long the run takes
    }
    claims.update(overrides)
    secret = str(claims.pop("secret", LOCAL_JWT_SECRET))
    return jwt.encode(claims, secret, algorithm="HS256")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def test_a_valid_access_token_is_the_user(kit: httpx.AsyncClient):
    user_id = str(uuid4())
    response = await kit.get("/me", headers=bearer(token(sub=user_id)))
    assert response.status_code == 200
    assert response.json() == {"user_id": user_id}


@pytest.mark.parametrize(
    ("label", "credentials", "code"),
    [
        ("missing", None, "unauthorized"),
        ("not bearer", "Basic abc", "unauthorized"),
        ("malformed", "Bearer not-a-jwt", "unauthorized"),
        ("tampered", "TAMPER", "unauthorized"),
        ("wrong secret", "Bearer " + token(secret="x" * 40), "unauthorized"),
        ("expired", "Bearer " + token(exp=int(time.time()) - 10), "token_expired"),
        ("wrong audience", "Bearer " + token(aud="someone-else"), "unauthorized"),
        ("anon key", "Bearer " + token(role="anon", aud="anon"), "unauthorized"),
        ("no subject", "Bearer " + token(sub="not-a-uuid"), "unauthorized"),
    ],
)
async def test_bad_credentials_get_a_401_json_error(
    kit: httpx.AsyncClient, label: str, credentials: str | None, code: str
):
    if credentials == "TAMPER":
        header, _payload, signature = token().split(".")
        forged = jwt.utils.base64url_encode(b'{"sub":"x","role":"service_role"}').decode()
        credentials = f"Bearer {header}.{forged}.{signature}"
    headers = {"Authorization": credentials} if credentials else {}
    response = await kit.get("/me", headers=headers)
    assert response.status_code == 401, label
    assert response.json()["error"]["code"] == code


async def test_only_the_service_key_reaches_service_endpoints(
    kit: httpx.AsyncClient, runtime: Runtime
):
    assert (await kit.get("/cron", headers=bearer(token()))).status_code == 401
    ok = await kit.get("/cron", headers=bearer(runtime.settings.service_key))
    assert ok.status_code == 200


async def test_an_invalid_body_is_a_422_naming_the_fields(kit: httpx.AsyncClient):
    response = await kit.post("/contacts", json={"name": "", "age": "old"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert {d["field"] for d in error["details"]} == {"body.name", "body.age"}


async def test_a_malformed_json_body_is_a_422(kit: httpx.AsyncClient):
    response = await kit.post(
        "/contacts", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_an_oversized_body_is_a_413(kit: httpx.AsyncClient):
    response = await kit.post("/echo", json={"blob": "x" * 2000})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_an_oversized_streamed_body_is_a_413(kit: httpx.AsyncClient):
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"blob": "'
        for _ in range(10):
            yield b"x" * 200
        yield b'"}'

    response = await kit.post(
        "/echo", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


async def test_app_errors_render_code_message_and_details(kit: httpx.AsyncClient):
    response = await kit.get("/conflict")
    assert response.status_code == 409
    assert response.json() == {
        "error": {"code": "conflict", "message": "Already there", "details": {"id": "x"}}
    }


async def test_a_unique_violation_from_postgres_is_a_409(kit: httpx.AsyncClient):
    response = await kit.get("/unique")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


async def test_a_bug_is_a_500_without_internals(kit: httpx.AsyncClient):
    response = await kit.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "message": "Internal error"}}
