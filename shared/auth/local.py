"""The local stand-in for Supabase Auth's signing key: ES256, published as JWKS.

New Supabase projects sign access tokens with an asymmetric key, so local mode
does too, and every token the tests and `connectgain user create` mint is
verified the way production verifies: by the JWKS the gateway serves.

The key is derived from the local JWT secret. Like that secret, it is public and
valid in local mode only, and every process of a checkout (the CLI, the dev
server, the tests) agrees on it without a key file to share.
"""

from __future__ import annotations

import functools
import hashlib
import time
import uuid
from typing import Any
from uuid import UUID

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from shared.settings import Settings

# The order of the P-256 group: a private scalar lies in [1, n - 1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _local_secret(settings: Settings) -> str:
    if settings.mode != "local" or settings.jwt_secret is None:
        raise RuntimeError("Access tokens are minted by Supabase Auth outside local mode")
    return settings.jwt_secret.get_secret_value()


@functools.cache
def _signing_key(secret: str) -> tuple[str, ec.EllipticCurvePrivateKey]:
    seed = hashlib.sha256(b"connectgain local ES256 signing key\x00" + secret.encode()).digest()
    scalar = int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1
    private = ec.derive_private_key(scalar, ec.SECP256R1())
    numbers = private.public_key().public_numbers()
    kid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"connectgain:local-key:{numbers.x}:{numbers.y}"))
    return kid, private


def local_jwks(settings: Settings) -> dict[str, Any]:
    """The JWKS document of the local Auth, shaped as Supabase Auth serves it."""
    kid, private = _signing_key(_local_secret(settings))
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update({"kid": kid, "alg": "ES256", "use": "sig", "key_ops": ["verify"], "ext": True})
    return {"keys": [jwk]}


def mint_access_token(
    settings: Settings,
    *,
    user_id: UUID,
    email: str | None,
    ttl_seconds: int = 86_400,
    session_id: UUID | None = None,
    user_metadata: dict[str, Any] | None = None,
    amr_method: str = "password",
    now: int | None = None,
) -> str:
    """An access token shaped like Supabase Auth's, for local users and tests only."""
    kid, private = _signing_key(_local_secret(settings))
    now = int(time.time()) if now is None else now
    claims = {
        "aud": settings.jwt_audience,
        "exp": now + ttl_seconds,
        "iat": now,
        "iss": f"{settings.supabase_url.rstrip('/')}/auth/v1",
        "sub": str(user_id),
        "email": email or "",
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": user_metadata or {},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": amr_method, "timestamp": now}],
        "session_id": str(session_id or uuid.uuid4()),
        "is_anonymous": False,
    }
    return jwt.encode(claims, private, algorithm="ES256", headers={"kid": kid, "typ": "JWT"})


def verify_local_token(settings: Settings, token: str) -> dict[str, Any]:
    """The claims of a token the local Auth signed; raises jwt.PyJWTError otherwise."""
    _, private = _signing_key(_local_secret(settings))
    claims: dict[str, Any] = jwt.decode(
        token,
        private.public_key(),
        algorithms=["ES256"],
        audience=settings.jwt_audience,
        options={"require": ["exp", "sub", "session_id"]},
    )
    return claims
