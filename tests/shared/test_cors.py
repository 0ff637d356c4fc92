"""CORS: a browser on another origin may call every function, through the gateway or
a function deployed alone; production names its origins."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr, ValidationError

import functions.health
from shared.runtime import Runtime
from shared.settings import Settings
from shared.tooling.gateway import Gateway

APP = "https://app.example.com"
OTHER = "https://evil.example"
SUPABASE_JS_HEADERS = "authorization, x-client-info, apikey, content-type, idempotency-key"


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": SUPABASE_JS_HEADERS,
    }


@pytest.fixture
async def listed(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway with an explicit list of origins, as production runs."""
    settings = runtime.settings.model_copy(update={"cors_origins": (APP,)})
    transport = httpx.ASGITransport(app=Gateway(settings, runtime=runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:54321") as c:
        yield c


async def test_a_preflight_from_another_origin_succeeds(client: httpx.AsyncClient):
    response = await client.options("/functions/v1/send-message", headers=preflight(OTHER))
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    allowed = response.headers["access-control-allow-headers"].lower()
    for header in SUPABASE_JS_HEADERS.split(", "):
        assert header in allowed
    assert "POST" in response.headers["access-control-allow-methods"]


async def test_a_listed_origin_is_allowed_and_another_is_refused(listed: httpx.AsyncClient):
    ok = await listed.options("/functions/v1/members", headers=preflight(APP, "PATCH"))
    assert ok.status_code == 200, ok.text
    assert ok.headers["access-control-allow-origin"] == APP

    refused = await listed.options("/functions/v1/members", headers=preflight(OTHER))
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert refused.json()["error"]["code"] == "cors_refused"
    assert "origin" in refused.json()["error"]["message"]

    real = await listed.get("/functions/v1/health", headers={"Origin": OTHER})
    assert real.status_code == 200
    assert "access-control-allow-origin" not in real.headers


async def test_answers_and_errors_carry_the_headers(listed: httpx.AsyncClient):
    real = await listed.get("/functions/v1/health", headers={"Origin": APP})
    assert real.status_code == 200
    assert real.headers["access-control-allow-origin"] == APP
    assert "idempotent-replayed" in real.headers["access-control-expose-headers"].lower()

    for path, status in (
        ("/functions/v1/members?organization_id=x", 401),  # no token
        ("/functions/v1/no-such-function", 404),  # the gateway's own answer
    ):
        error = await listed.get(path, headers={"Origin": APP})
        assert error.status_code == status, error.text
        assert error.headers["access-control-allow-origin"] == APP
    guarded = await listed.post(
        "/functions/v1/send-message", content=b'{"a": NaN}', headers={"Origin": APP}
    )
    assert guarded.status_code == 422
    assert guarded.headers["access-control-allow-origin"] == APP


async def test_a_function_deployed_alone_answers_preflights():
    transport = httpx.ASGITransport(app=functions.health.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fn.example") as c:
        response = await c.options("/", headers=preflight(OTHER, "GET"))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"


def production(**values: object) -> Settings:
    return Settings(
        mode="production",
        jwt_secret=SecretStr("s" * 40),
        service_role_key=SecretStr("k"),
        _env_file=None,  # type: ignore[call-arg]
        **values,
    )


def test_production_refuses_any_origin_and_needs_a_list(monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(ValidationError, match="CONNECTGAIN_CORS_ORIGINS"):
        production()  # unset: the local "*"
    with pytest.raises(ValidationError, match="CONNECTGAIN_CORS_ORIGINS"):
        production(cors_origins=())
    monkeypatch.setenv("CONNECTGAIN_CORS_ORIGINS", f"{APP}, *")
    with pytest.raises(ValidationError, match="CONNECTGAIN_CORS_ORIGINS"):
        production()
    monkeypatch.setenv("CONNECTGAIN_CORS_ORIGINS", f"{APP}/, https://admin.example.com")
    assert production().cors_origins == (APP, "https://admin.example.com")
