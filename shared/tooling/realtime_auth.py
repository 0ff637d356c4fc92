"""Who joins a Realtime channel, and what realtime.messages' policies let them do there.

A socket connects with the project's anon or service key (or a user's access token)
as `apikey`; each channel join may carry a user's `access_token`, verified as every
function verifies one (shared/auth: the JWKS's ES256 keys, HS256 with the legacy
secret). Without one, the channel acts with the socket's key, as Supabase does.

A private channel is authorized as Supabase Realtime does it: a probe row for the
channel's topic is inserted into realtime.messages as the owner, then selected as
the joining user (role, `request.jwt.claims`, `request.jwt.claim.*` and
`realtime.topic` set as PostgREST and Realtime set them), and the transaction is
rolled back. Sending on it inserts as the user, against the INSERT policies.
"""

from __future__ import annotations

import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import asyncpg
import jwt

from shared.auth import verify_access_token
from shared.db import Connection
from shared.errors import AppError, Unauthorized
from shared.runtime import Runtime
from shared.settings import Settings

# Realtime's extensions a policy may name in realtime.messages.extension.
EXTENSIONS = ("broadcast", "presence")

_AS_USER = (
    "select set_config('role', $1, true), set_config('realtime.topic', $2, true),"
    " set_config('request.jwt.claims', $3, true), set_config('request.jwt.claim.sub', $4, true),"
    " set_config('request.jwt.claim.role', $1, true)"
)
_PROBE = "insert into realtime.messages (id, topic, extension) values ($1, $2, $3)"


class TokenRefused(Exception):
    """A token Realtime will not act with; `code` and `message` as Supabase words them."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


@dataclass(frozen=True)
class Identity:
    token: str
    role: str
    claims: dict[str, Any]

    @property
    def expires_at(self) -> float | None:
        exp = self.claims.get("exp")
        return float(exp) if isinstance(exp, int | float) else None


@dataclass(frozen=True)
class Policies:
    broadcast_read: bool
    presence_read: bool

    @property
    def can_join(self) -> bool:
        return self.broadcast_read or self.presence_read


def _project_key(token: str, settings: Settings) -> Identity | None:
    """The project's anon or service key: signed by us, so its claims are known good."""
    for key in (settings.local_key("anon"), settings.service_key):
        if hmac.compare_digest(token.encode(), key.encode()):
            claims = jwt.decode(token, options={"verify_signature": False})
            return Identity(token=token, role=str(claims["role"]), claims=claims)
    return None


def _expired_for(token: str) -> int:
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.InvalidTokenError:
        return 0
    return max(0, int(time.time() - exp)) if isinstance(exp, int | float) else 0


async def identify(token: str, *, runtime: Runtime) -> Identity:
    """The identity a token acts as; TokenRefused with Supabase's wording otherwise."""
    if (known := _project_key(token, runtime.settings)) is not None:
        return known
    try:
        user = await verify_access_token(token, settings=runtime.settings, jwks=runtime.jwks)
    except Unauthorized as exc:
        if exc.code == "token_expired":
            seconds = _expired_for(token)
            raise TokenRefused(
                "InvalidJWTToken", f"Token has expired {seconds} seconds ago"
            ) from exc
        if exc.message == "The access token is invalid" and token.count(".") != 2:
            raise TokenRefused("MalformedJWT", "The token provided is not a valid JWT") from exc
        raise TokenRefused("InvalidJWTToken", exc.message) from exc
    except AppError as exc:  # the signing keys could not be fetched
        raise TokenRefused("JwtSignerError", exc.message) from exc
    return Identity(token=token, role=user.db_role, claims=user.claims)


async def _as_user(conn: Connection, identity: Identity, topic: str) -> None:
    sub = identity.claims.get("sub")
    await conn.execute(
        _AS_USER, identity.role, topic, json.dumps(identity.claims), "" if sub is None else str(sub)
    )


async def read_policies(runtime: Runtime, identity: Identity, topic: str) -> Policies:
    """What the SELECT policies let `identity` read on `topic`, per extension."""
    probes = {extension: uuid4() for extension in EXTENSIONS}
    async with runtime.db.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.executemany(_PROBE, [(i, topic, e) for e, i in probes.items()])
            await _as_user(conn, identity, topic)
            seen = {
                row["id"]
                for row in await conn.fetch(
                    "select id from realtime.messages where id = any($1::uuid[])",
                    list(probes.values()),
                )
            }
        finally:
            await tx.rollback()
    return Policies(probes["broadcast"] in seen, probes["presence"] in seen)


async def can_write(runtime: Runtime, identity: Identity, topic: str, extension: str) -> bool:
    """Whether the INSERT policies let `identity` write `extension` (broadcast, presence)
    on `topic`."""
    async with runtime.db.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await _as_user(conn, identity, topic)
            await conn.execute(_PROBE, uuid4(), topic, extension)
        except asyncpg.InsufficientPrivilegeError:
            return False
        finally:
            await tx.rollback()
    return True


async def authorize(
    runtime: Runtime,
    token: str,
    topic: str,
    *,
    private: bool,
    known: Identity | None = None,
    had: Policies | None = None,
) -> tuple[Identity, Policies | None]:
    """The identity `token` acts as on channel `topic`, and on a private channel what it
    may read there; TokenRefused, worded as Supabase words it, when it may not join
    (`known`: an identity already verified; `had`: the policies a refreshed token
    replaces, whose broadcast reading it may not lose)."""
    identity = known if known is not None and known.token == token else None
    identity = identity or await identify(token, runtime=runtime)
    if not private:
        return identity, None
    policies = await read_policies(runtime, identity, topic)
    if not policies.can_join:
        denied = "You do not have permissions to read from this Channel topic"
        raise TokenRefused("Unauthorized", f"{denied}: {topic}")
    if had is not None and had.broadcast_read and not policies.broadcast_read:
        revoked = "You no longer have permission to read from this Channel topic"
        raise TokenRefused("Unauthorized", f"{revoked}: {topic}")
    return identity, policies
