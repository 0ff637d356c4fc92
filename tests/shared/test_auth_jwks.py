"""User tokens verified by a project's JWKS (ES256, RS256), next to legacy HS256.

The project's JWKS is served by respx, shaped as Supabase Auth serves it; the
cache runs on a clock the tests move, so TTLs and refresh intervals need no sleep.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import uuid4

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import APIRouter
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.auth.jwks import JwksCache
from shared.runtime import Runtime
from shared.settings import LOCAL_JWT_SECRET
from shared.web import CurrentUser, function_app

PROJECT = "https://abc.supabase.co"
JWKS = f"{PROJECT}/auth/v1/.well-known/jwks.json"
TTL, MIN_REFRESH = 600.0, 10.0

EC_A = ec.generate_private_key(ec.SECP256R1())
EC_B = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

router = APIRouter()


@router.get("/me")
async def me(user: CurrentUser) -> dict[str, str]:
    return {"user_id": str(user.user_id)}


def jwk(private: Any, kid: str) -> dict[str, Any]:
    """A public key as Supabase Auth publishes it in its JWKS."""
    if isinstance(private, rsa.RSAPrivateKey):
        key, alg = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True), "RS256"
    else:
        key, alg = ECAlgorithm.to_jwk(private.public_key(), as_dict=True), "ES256"
    return {**key, "kid": kid, "alg": alg, "use": "sig", "key_ops": ["verify"], "ext": True}


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": str(uuid4()),
        "role": "authenticated",
        "aud": "authenticated",
        "iss": f"{PROJECT}/auth/v1",
        "iat": now,
        "exp": now + 600,
    }
    return {**base, **overrides}


def signed(private: Any, kid: str, alg: str = "ES256", **overrides: object) -> str:
    return jwt.encode(claims(**overrides), private, algorithm=alg, headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, object], secret: bytes | None) -> str:
    """A token PyJWT would refuse to make: HMAC over a public key's bytes, or unsigned."""
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims()).encode())
    if secret is None:
        return head + "."
    return head + "." + b64(hmac.new(secret, head.encode(), hashlib.sha256).digest())


def pem(private: Any) -> bytes:
    public: bytes = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys() -> Iterator[respx.Route]:
    """The project's JWKS endpoint; publishes key A until a test says otherwise."""
    with respx.mock(assert_all_called=False) as mock:
        yield mock.get(JWKS).respond(200, json={"keys": [jwk(EC_A, "a")]})


@pytest.fixture
async def kit(runtime: Runtime, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    """A function of a hosted project: its Auth at PROJECT, the legacy secret still set."""
    runtime.settings = runtime.settings.model_copy(update={"supabase_url": PROJECT})
    runtime.jwks = JwksCache(
        url=runtime.settings.jwks_endpoint,
        http=runtime.http,
        ttl_seconds=TTL,
        min_refresh_seconds=MIN_REFRESH,
        timeout_seconds=1.0,
        clock=clock,
    )
    app = function_app(router, name="kit", runtime=runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit") as client:
        yield client


async def call(kit: httpx.AsyncClient, token: str) -> tuple[int, str | None]:
    response = await kit.get("/me", headers={"Authorization": f"Bearer {token}"})
    body = response.json()
    return response.status_code, body["error"]["code"] if "error" in body else None


async def test_es256_is_accepted_and_the_keys_are_cached(kit: httpx.AsyncClient, keys: respx.Route):
    user = str(uuid4())
    response = await kit.get(
        "/me", headers={"Authorization": f"Bearer {signed(EC_A, 'a', sub=user)}"}
    )
    assert response.status_code == 200
    assert response.json() == {"user_id": user}
    assert await call(kit, signed(EC_A, "a")) == (200, None)
    assert keys.call_count == 1


async def test_rs256_is_accepted(kit: httpx.AsyncClient, keys: respx.Route):
    keys.respond(200, json={"keys": [jwk(EC_A, "a"), jwk(RSA_KEY, "r")]})
    assert await call(kit, signed(RSA_KEY, "r", "RS256")) == (200, None)


async def test_a_rotated_key_is_accepted_after_a_refresh(
    kit: httpx.AsyncClient, keys: respx.Route, clock: Clock
):
    assert await call(kit, signed(EC_A, "a")) == (200, None)
    keys.respond(200, json={"keys": [jwk(EC_A, "a"), jwk(EC_B, "b")]})  # Supabase rotates
    clock.now += MIN_REFRESH
    assert await call(kit, signed(EC_B, "b")) == (200, None)
    assert await call(kit, signed(EC_A, "a")) == (200, None)  # the previous key, still trusted
    assert keys.call_count == 2


async def test_a_token_signed_with_another_key_under_a_published_kid_is_refused(
    kit: httpx.AsyncClient, keys: respx.Route
):
    assert await call(kit, signed(EC_B, "a")) == (401, "unauthorized")
    assert await call(kit, signed(RSA_KEY, "a", "RS256")) == (401, "unsupported_algorithm")
    token = signed(EC_A, "a")
    head, _, signature = token.split(".")
    other = b64(json.dumps(claims(sub=str(uuid4()))).encode())  # a payload it did not sign
    tampered = f"{head}.{other}.{signature}"
    assert await call(kit, tampered) == (401, "unauthorized")


async def test_an_unknown_kid_is_refused_with_one_refresh_per_interval(
    kit: httpx.AsyncClient, keys: respx.Route, clock: Clock
):
    assert await call(kit, signed(EC_A, "a")) == (200, None)
    clock.now += MIN_REFRESH
    garbage = [signed(EC_B, f"made-up-{i}") for i in range(5)]
    answers = await asyncio.gather(*(call(kit, token) for token in garbage))
    assert answers == [(401, "unknown_kid")] * 5
    assert keys.call_count == 2  # one refresh for all of them
    clock.now += MIN_REFRESH - 1
    assert await call(kit, signed(EC_B, "made-up-again")) == (401, "unknown_kid")
    assert keys.call_count == 2
    clock.now += 1
    assert await call(kit, signed(EC_B, "made-up-later")) == (401, "unknown_kid")
    assert keys.call_count == 3


async def test_a_revoked_key_is_refused_once_the_cache_expires(
    kit: httpx.AsyncClient, keys: respx.Route, clock: Clock
):
    assert await call(kit, signed(EC_A, "a")) == (200, None)
    keys.respond(200, json={"keys": [jwk(EC_B, "b")]})
    assert await call(kit, signed(EC_A, "a")) == (200, None)  # cached for the TTL
    clock.now += TTL
    assert await call(kit, signed(EC_A, "a")) == (401, "unknown_kid")
    assert keys.call_count == 2


@pytest.mark.parametrize(
    ("label", "overrides", "code"),
    [
        ("expired", {"exp": int(time.time()) - 10}, "token_expired"),
        ("wrong audience", {"aud": "someone-else"}, "unauthorized"),
        ("no audience", {"aud": None}, "unauthorized"),
        ("anon role", {"role": "anon"}, "unauthorized"),
        ("service role", {"role": "service_role"}, "unauthorized"),
        ("no subject", {"sub": "not-a-uuid"}, "unauthorized"),
    ],
)
async def test_bad_claims_are_refused(
    kit: httpx.AsyncClient, keys: respx.Route, label: str, overrides: dict[str, object], code: str
):
    token_claims = {k: v for k, v in claims(**overrides).items() if v is not None}
    token = jwt.encode(token_claims, EC_A, algorithm="ES256", headers={"kid": "a"})
    assert await call(kit, token) == (401, code), label


async def test_the_issuer_is_checked_when_configured(
    kit: httpx.AsyncClient, keys: respx.Route, runtime: Runtime
):
    runtime.settings.jwt_issuer = f"{PROJECT}/auth/v1"
    assert await call(kit, signed(EC_A, "a")) == (200, None)
    assert await call(kit, signed(EC_A, "a", iss="https://evil.supabase.co/auth/v1")) == (
        401,
        "unauthorized",
    )


@pytest.mark.parametrize("legacy_secret", [True, False])
async def test_algorithm_confusion_is_refused(
    kit: httpx.AsyncClient, keys: respx.Route, runtime: Runtime, legacy_secret: bool
):
    keys.respond(200, json={"keys": [jwk(EC_A, "a"), jwk(RSA_KEY, "r")]})
    if not legacy_secret:
        runtime.settings.jwt_secret = None
    hs256_code = "unauthorized" if legacy_secret else "unsupported_algorithm"
    published = json.dumps(jwk(EC_A, "a")).encode()
    for secret in (pem(EC_A), pem(RSA_KEY), published):
        token = forged({"alg": "HS256", "typ": "JWT", "kid": "a"}, secret)
        assert await call(kit, token) == (401, hs256_code)
    # a key is used only with the algorithm its type pins
    assert await call(kit, signed(RSA_KEY, "a", "RS256")) == (401, "unsupported_algorithm")
    assert await call(kit, signed(EC_A, "r", "ES256")) == (401, "unsupported_algorithm")
    assert await call(kit, forged({"alg": "none", "kid": "a"}, None)) == (
        401,
        "unsupported_algorithm",
    )
    assert await call(kit, signed(RSA_KEY, "r", "PS256")) == (401, "unsupported_algorithm")
    for alg in (["ES256"], {"ES256": True}, None):
        token = forged({"alg": alg, "kid": "a"}, b"x")
        assert await call(kit, token) == (401, "unsupported_algorithm")
    assert await call(kit, forged({"alg": "ES256", "kid": ["a"]}, b"x")) == (401, "unauthorized")


async def test_a_token_without_a_kid_is_refused(kit: httpx.AsyncClient, keys: respx.Route):
    token = jwt.encode(claims(), EC_A, algorithm="ES256")
    assert await call(kit, token) == (401, "unknown_kid")


async def test_legacy_hs256_is_accepted_only_with_the_secret(
    kit: httpx.AsyncClient, keys: respx.Route, runtime: Runtime
):
    token = jwt.encode(claims(), LOCAL_JWT_SECRET, algorithm="HS256")
    assert await call(kit, token) == (200, None)
    assert keys.call_count == 0  # HS256 never needs the JWKS
    runtime.settings.jwt_secret = None
    assert await call(kit, token) == (401, "unsupported_algorithm")


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (httpx.ConnectError("refused"), 503, "jwks_unavailable"),
        (httpx.ReadTimeout("slow"), 503, "jwks_unavailable"),
        (httpx.Response(500, json={"message": "boom"}), 503, "jwks_unavailable"),
        (httpx.Response(404, json={"message": "no"}), 502, "jwks_invalid"),
        (httpx.Response(200, text="<html>"), 502, "jwks_invalid"),
        (httpx.Response(200, json={"keys": "none"}), 502, "jwks_invalid"),
    ],
)
async def test_the_jwks_endpoint_failing_is_a_5xx_with_a_code_and_cached_keys_keep_working(
    kit: httpx.AsyncClient,
    keys: respx.Route,
    clock: Clock,
    failure: Exception | httpx.Response,
    status: int,
    code: str,
):
    assert await call(kit, signed(EC_A, "a")) == (200, None)
    keys.side_effect = [failure]
    clock.now += TTL  # stale: the next token refreshes, and the refresh fails
    assert await call(kit, signed(EC_A, "a")) == (200, None)
    assert keys.call_count == 2
    clock.now += MIN_REFRESH
    keys.side_effect = [failure]
    assert await call(kit, signed(EC_B, "b")) == (status, code)
    assert await call(kit, signed(EC_B, "b")) == (status, code)  # no new fetch within the interval
    assert keys.call_count == 3


async def test_a_cold_start_with_the_jwks_endpoint_down_is_a_503(
    kit: httpx.AsyncClient, keys: respx.Route
):
    keys.side_effect = httpx.ConnectError("refused")
    assert await call(kit, signed(EC_A, "a")) == (503, "jwks_unavailable")
