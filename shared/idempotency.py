"""Idempotency-Key: a retried request gets the first answer instead of doing the work twice.

The key is claimed before the work starts (a second concurrent request gets a
409), the answer is stored when it ends, and a failure that was not the
caller's fault (5xx) releases the claim so the retry may try again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from shared.auth import ApiKeyPrincipal, Principal, UserPrincipal
from shared.db import Database
from shared.errors import AppError, Conflict, Unprocessable, status_of

TTL = "24 hours"


def owner_of(principal: Principal) -> str:
    if isinstance(principal, UserPrincipal):
        return f"user:{principal.user_id}"
    if isinstance(principal, ApiKeyPrincipal):
        return f"api_key:{principal.key_id}"
    return principal.db_role


def request_hash(*parts: Any) -> bytes:
    return hashlib.sha256(json.dumps(jsonable_encoder(parts), sort_keys=True).encode()).digest()


async def once(
    db: Database,
    *,
    principal: Principal,
    scope: str,
    key: str | None,
    fingerprint: bytes,
    work: Callable[[], Awaitable[tuple[int, Any]]],
) -> JSONResponse:
    """Run `work` (returning status and body) at most once per key; replay its answer after."""
    if key is None:
        status, body = await work()
        return JSONResponse(jsonable_encoder(body), status_code=status)
    if not 1 <= len(key) <= 255:
        raise Unprocessable("Idempotency-Key must be 1 to 255 characters")
    owner = owner_of(principal)
    async with db.service_tx() as conn:
        claimed = await conn.fetchval(
            f"""
            insert into private.idempotency_keys (owner, scope, key, request_hash)
            values ($1, $2, $3, $4)
            on conflict (owner, scope, key) do update
               set request_hash = excluded.request_hash, status_code = null, response = null,
                   created_at = now()
             where private.idempotency_keys.created_at < now() - interval '{TTL}'
            returning true
            """,
            owner,
            scope,
            key,
            fingerprint,
        )
        previous = (
            None
            if claimed
            else await conn.fetchrow(
                "select request_hash, status_code, response from private.idempotency_keys"
                " where owner = $1 and scope = $2 and key = $3",
                owner,
                scope,
                key,
            )
        )
    if previous is not None:
        if previous["request_hash"] != fingerprint:
            raise Unprocessable("This Idempotency-Key was used for a different request")
        if previous["status_code"] is None:
            raise Conflict("A request with this Idempotency-Key is still in progress")
        return JSONResponse(
            previous["response"],
            status_code=previous["status_code"],
            headers={"Idempotent-Replayed": "true"},
        )

    try:
        status, body = await work()
    except AppError as exc:
        if status_of(exc) >= 500:
            await _release(db, owner, scope, key)
        else:
            await _store(db, owner, scope, key, status_of(exc), exc.body())
        raise
    except BaseException:
        await _release(db, owner, scope, key)
        raise
    encoded = jsonable_encoder(body)
    await _store(db, owner, scope, key, status, encoded)
    return JSONResponse(encoded, status_code=status)


async def _store(db: Database, owner: str, scope: str, key: str, status: int, body: Any) -> None:
    async with db.service_tx() as conn:
        await conn.execute(
            "update private.idempotency_keys set status_code = $4, response = $5"
            " where owner = $1 and scope = $2 and key = $3",
            owner,
            scope,
            key,
            status,
            body,
        )


async def _release(db: Database, owner: str, scope: str, key: str) -> None:
    async with db.service_tx() as conn:
        await conn.execute(
            "delete from private.idempotency_keys where owner = $1 and scope = $2 and key = $3",
            owner,
            scope,
            key,
        )
