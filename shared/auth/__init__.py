"""Who is calling: the principals a request can act as, and how a token becomes one.

A principal knows the Postgres role and JWT claims its transactions run with,
so `db.user_tx(principal)` can do for it exactly what PostgREST does.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import jwt

from shared.auth.jwks import JwksCache
from shared.auth.local import local_jwks as local_jwks
from shared.auth.local import mint_access_token as mint_access_token
from shared.errors import Unauthorized
from shared.settings import Settings

# Signed with a key of the JWKS; HS256 only with the legacy JWT secret.
ASYMMETRIC = frozenset({"ES256", "RS256"})


@dataclass(frozen=True)
class UserPrincipal:
    """A signed-in person, from a Supabase access token."""

    user_id: UUID
    claims: dict[str, Any]
    db_role: str = "authenticated"


@dataclass(frozen=True)
class ApiKeyPrincipal:
    """An external system holding a cg_ key of one organization."""

    key_id: UUID
    organization_id: UUID
    scopes: tuple[str, ...]
    db_role: str = "authenticated"

    @property
    def claims(self) -> dict[str, Any]:
        return {
            "role": self.db_role,
            "api_key": {
                "id": str(self.key_id),
                "organization_id": str(self.organization_id),
                "scopes": list(self.scopes),
            },
        }


@dataclass(frozen=True)
class AnonPrincipal:
    """The public anon key: signed in as nobody."""

    claims: dict[str, Any] = field(default_factory=lambda: {"role": "anon"})
    db_role: str = "anon"


@dataclass(frozen=True)
class ServicePrincipal:
    """The service role key: trusted server-to-server callers (scheduler, ops)."""

    claims: dict[str, Any] = field(default_factory=lambda: {"role": "service_role"})
    db_role: str = "service_role"


Principal = UserPrincipal | ApiKeyPrincipal | AnonPrincipal | ServicePrincipal


async def verify_access_token(token: str, *, settings: Settings, jwks: JwksCache) -> UserPrincipal:
    """A Supabase user access token → its user.

    The algorithm decides the key, never the other way round: ES256 and RS256 by
    the JWKS key the token names (whose type pins the algorithm), HS256 by the
    legacy JWT secret if one is set; anything else (`none` included) is refused.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("The access token is invalid") from exc
    algorithm = header.get("alg")
    if not isinstance(algorithm, str):  # a list or object here is no algorithm at all
        raise Unauthorized("The access token names no algorithm", code="unsupported_algorithm")
    key: Any
    if algorithm == "HS256" and settings.jwt_secret is not None:
        key = settings.jwt_secret.get_secret_value()
    elif algorithm in ASYMMETRIC:
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("The access token names no signing key (kid)", code="unknown_kid")
        signing = await jwks.key(kid)
        if signing.algorithm != algorithm:
            raise Unauthorized(
                f"The access token's key is for {signing.algorithm}",
                code="unsupported_algorithm",
            )
        key = signing.key
    else:
        raise Unauthorized(
            "The access token's signing algorithm is not accepted", code="unsupported_algorithm"
        )
    return _user(_decode(token, key, algorithm, settings))


def _decode(token: str, key: Any, algorithm: str, settings: Settings) -> dict[str, Any]:
    required = ["exp", "sub", "aud"] + (["iss"] if settings.jwt_issuer else [])
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer or None,
            options={"require": required},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The access token has expired", code="token_expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise Unauthorized("The access token is not for this audience") from exc
    except jwt.InvalidIssuerError as exc:
        raise Unauthorized("The access token is not from this project's Auth") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("The access token is invalid") from exc
    return claims


def _user(claims: dict[str, Any]) -> UserPrincipal:
    if claims.get("role") != "authenticated":
        raise Unauthorized("The access token is not a signed-in user's")
    try:
        user_id = UUID(str(claims["sub"]))
    except ValueError as exc:
        raise Unauthorized("The access token has no valid subject") from exc
    return UserPrincipal(user_id=user_id, claims=claims)


def is_service_key(token: str, settings: Settings) -> bool:
    return hmac.compare_digest(token.encode(), settings.service_key.encode())


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
