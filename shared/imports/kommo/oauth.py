"""Kommo connected by OAuth 2.0, and an OAuth connection's access token kept fresh.

A public Kommo integration (CONNECTGAIN_KOMMO_CLIENT_ID, _CLIENT_SECRET and the
_REDIRECT_URI registered with it) lets an admin connect without copying a token:

1. `authorize_url`: Kommo's consent page, with a `state` naming the admin and the
   organization, signed with a key derived from the client secret, good STATE_TTL;
2. Kommo sends the browser to the redirect URI (the SPA) with `code`, `referer`
   (the account's host) and `state`, which the SPA posts with the admin's own
   access token (shared/imports/kommo/connect.py: `connect_oauth`);
3. `exchange`: the code for an access token (a day) and a refresh token (good
   once) at the account's `/oauth2/access_token`. The host is built from the
   subdomain, never taken from the referer as given: the secret goes only to Kommo.

`fresh_token` renews an access token that expires within RENEW_BEFORE, holding the
token row's lock: two runners never spend one refresh token. Codes and refresh
tokens are single-use, so a token request is never retried once it may have
reached Kommo.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode
from uuid import UUID

import jwt
from pydantic import BaseModel, Field, ValidationError

from shared.channels.answers import ProviderError, json_body
from shared.channels.http import ProviderClient
from shared.db import Connection
from shared.errors import ServiceUnavailable, Unprocessable
from shared.imports.kommo.client import ERRORS, KommoSettings, base_url
from shared.runtime import Runtime

STATE_TTL = 600  # seconds an admin has to consent at Kommo
RENEW_BEFORE = timedelta(minutes=10)
_AUDIENCE = "connectgain:kommo-oauth"


class Revoked(Exception):
    """Kommo no longer renews the connection's tokens: an admin must connect again."""


@dataclass(frozen=True)
class Tokens:
    access: str
    refresh: str
    expires_at: datetime


class _Answer(BaseModel):
    access_token: str = Field(min_length=1, max_length=4096)
    refresh_token: str = Field(min_length=1, max_length=4096)
    expires_in: int = Field(gt=0)


@dataclass(frozen=True)
class _Integration:
    client_id: str
    client_secret: str
    redirect_uri: str
    oauth_url: str


def _integration() -> _Integration:
    settings = KommoSettings()
    if not (settings.client_id and settings.client_secret and settings.redirect_uri):
        raise ServiceUnavailable(
            "Connecting Kommo by OAuth is not configured on this server; connect with a"
            " long-lived token",
            code="kommo_oauth_not_configured",
        )
    return _Integration(
        settings.client_id,
        settings.client_secret.get_secret_value(),
        settings.redirect_uri,
        settings.oauth_url,
    )


def _state_key(integration: _Integration) -> bytes:
    # 32 bytes for HS256, and a state key that is not the secret Kommo checks
    return hashlib.sha256(b"kommo-oauth-state\0" + integration.client_secret.encode()).digest()


def authorize_url(*, organization_id: UUID, user_id: UUID) -> str:
    integration = _integration()
    claims = {
        "aud": _AUDIENCE,
        "org": str(organization_id),
        "sub": str(user_id),
        "exp": int(time.time()) + STATE_TTL,
    }
    state = jwt.encode(claims, _state_key(integration), algorithm="HS256")
    query = urlencode({"client_id": integration.client_id, "state": state, "mode": "popup"})
    return f"{integration.oauth_url}?{query}"


def read_state(state: str, *, user_id: UUID) -> UUID:
    """The organization `user_id` started connecting; 422 unless the state is ours,
    theirs and recent."""
    try:
        claims = jwt.decode(
            state,
            _state_key(_integration()),
            algorithms=["HS256"],
            audience=_AUDIENCE,
            options={"require": ["exp", "sub", "org"]},
        )
        organization_id = UUID(str(claims["org"]))
    except jwt.ExpiredSignatureError:
        raise Unprocessable(
            "state: the authorization at Kommo took too long; connect again",
            code="kommo_oauth_expired",
        ) from None
    except (jwt.InvalidTokenError, ValueError):
        raise Unprocessable(
            "state: not one this server issued", code="kommo_oauth_bad_state"
        ) from None
    if claims["sub"] != str(user_id):
        raise Unprocessable(
            "state: issued to another user; connect from your own session",
            code="kommo_oauth_bad_state",
        )
    return organization_id


async def exchange(runtime: Runtime, *, subdomain: str, code: str) -> Tokens:
    """An authorization code → the connection's tokens (ProviderError if refused)."""
    return await _grant(runtime, subdomain, {"grant_type": "authorization_code", "code": code})


async def _grant(runtime: Runtime, subdomain: str, grant: dict[str, str]) -> Tokens:
    integration = _integration()
    body = {
        "client_id": integration.client_id,
        "client_secret": integration.client_secret,
        "redirect_uri": integration.redirect_uri,
        **grant,
    }
    provider = ProviderClient(runtime.http, runtime.settings)
    response = await provider.request(
        "POST", f"{base_url(subdomain)}/oauth2/access_token", json=body, at_most_once=True
    )
    if not response.is_success:
        raise ERRORS.refusal(response)
    try:
        answer = _Answer.model_validate(json_body(response))
    except ValidationError:
        raise ProviderError(
            "Kommo answered the token request without tokens",
            status=response.status_code,
            outcome="unknown",  # a code or refresh token may have been spent
        ) from None
    expires_at = datetime.now(UTC) + timedelta(seconds=answer.expires_in)
    return Tokens(answer.access_token, answer.refresh_token, expires_at)


async def fresh_token(
    runtime: Runtime, conn: Connection, *, organization_id: UUID
) -> tuple[str, str] | None:
    """(subdomain, access token) to call Kommo with, renewed first when an OAuth token
    expires within RENEW_BEFORE; None when no account is connected. `conn` is a
    service transaction: the token row stays locked until it commits."""
    row = await conn.fetchrow(
        "select c.subdomain, t.token, t.refresh_token, t.expires_at < now() + $2 as due"
        " from public.kommo_connections c"
        " join private.kommo_tokens t on t.organization_id = c.organization_id"
        " where c.organization_id = $1 for update of t",
        organization_id,
        RENEW_BEFORE,
    )
    if row is None:
        return None
    if not row["due"]:  # a long-lived token (due is null) or a fresh one
        return row["subdomain"], row["token"]
    try:
        tokens = await _grant(
            runtime,
            row["subdomain"],
            {"grant_type": "refresh_token", "refresh_token": row["refresh_token"]},
        )
    except ProviderError as exc:
        if exc.status in (400, 401) and exc.outcome == "refused":
            raise Revoked(
                f"Kommo no longer renews this connection's access ({exc.message}):"
                " an admin must connect Kommo again"
            ) from exc
        if exc.outcome == "unknown":  # asking again later is harmless: a spent one is refused
            raise ProviderError(exc.message, status=exc.status, outcome="unavailable") from exc
        raise
    await conn.execute(
        "update private.kommo_tokens set token = $2, refresh_token = $3, expires_at = $4"
        " where organization_id = $1",
        organization_id,
        tokens.access,
        tokens.refresh,
        tokens.expires_at,
    )
    return row["subdomain"], tokens.access
