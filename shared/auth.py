"""Who is calling: the principals a request can act as, and how a token becomes one.

A principal knows the Postgres role and JWT claims its transactions run with,
so `db.user_tx(principal)` can do for it exactly what PostgREST does.
"""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import jwt

from shared.errors import Unauthorized
from shared.settings import Settings


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


def verify_access_token(token: str, settings: Settings) -> UserPrincipal:
    """A Supabase user access token (HS256 with the project's JWT secret) → its user."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=["HS256"],
            audience=settings.jwt_audience,
            options={"require": ["exp", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The access token has expired", code="token_expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise Unauthorized("The access token is not for this audience") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("The access token is invalid") from exc
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


def mint_access_token(
    settings: Settings, *, user_id: UUID, email: str | None, ttl_seconds: int = 86_400
) -> str:
    """An access token shaped like Supabase Auth's, for local users and tests only."""
    if settings.mode != "local":
        raise RuntimeError("Access tokens are minted by Supabase Auth outside local mode")
    now = int(time.time())
    claims = {
        "aud": settings.jwt_audience,
        "exp": now + ttl_seconds,
        "iat": now,
        "iss": f"{settings.supabase_url.rstrip('/')}/auth/v1",
        "sub": str(user_id),
        "email": email or "",
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}],
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
