"""Idempotency-Key: a retried request gets the first answer instead of doing the work twice.

The key is claimed before the work starts and holds a final answer when it ends.
Only final answers are kept (a success, the caller's 4xx, a provider's refusal or
an unknown outcome); a failure that a retry may cure (a 5xx, a provider that surely
did not act) releases the key, so the retry really does the work.

A claim lasts `claim_seconds`: a request killed mid-work does not hold the key for
a day. When the work has created something that must not be created twice (a
send's message), the key is linked to it, and a retry after the claim expired is
answered from that resource's state instead of working again (see `Held`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from shared.auth import ApiKeyPrincipal, Principal, UserPrincipal
from shared.db import Connection, Database
from shared.errors import AppError, Conflict, Unprocessable, status_of
from shared.safejson import jsonable

TTL = "24 hours"
CLAIM_SECONDS = 60.0


def owner_of(principal: Principal) -> str:
    if isinstance(principal, UserPrincipal):
        return f"user:{principal.user_id}"
    if isinstance(principal, ApiKeyPrincipal):
        return f"api_key:{principal.key_id}"
    return principal.db_role


def request_hash(*parts: Any) -> bytes:
    return hashlib.sha256(json.dumps(jsonable(parts), sort_keys=True).encode()).digest()


@dataclass(frozen=True)
class Answer:
    """What a request answers: its status and JSON body, and whether it is the stored
    answer of an earlier request with the same key. The HTTP kit makes it a response."""

    status: int
    body: Any
    replayed: bool = False

    @classmethod
    def of(cls, status: int, body: Any) -> Answer:
        return cls(status=status, body=jsonable(body))


def replay(status: int, body: Any) -> Answer:
    return Answer(status=status, body=jsonable(body), replayed=True)


@dataclass(frozen=True)
class Claim:
    """This request holds the key. Each method runs in the caller's transaction, so the
    key's answer is written together with the state it answers for."""

    owner: str
    scope: str
    key: str

    async def link(self, conn: Connection, resource_id: UUID, claim_seconds: float) -> None:
        await conn.execute(
            "update private.idempotency_keys set resource_id = $4,"
            " claimed_until = now() + make_interval(secs => $5)"
            " where owner = $1 and scope = $2 and key = $3 and status_code is null",
            self.owner,
            self.scope,
            self.key,
            resource_id,
            claim_seconds,
        )

    async def store(self, conn: Connection, status: int, body: Any) -> None:
        await conn.execute(
            "update private.idempotency_keys set status_code = $4, response = $5"
            " where owner = $1 and scope = $2 and key = $3",
            self.owner,
            self.scope,
            self.key,
            status,
            jsonable(body),
        )

    async def release(self, conn: Connection) -> None:
        await conn.execute(
            "delete from private.idempotency_keys where owner = $1 and scope = $2 and key = $3",
            self.owner,
            self.scope,
            self.key,
        )

    async def settle(self, db: Database, error: AppError) -> None:
        """Before anything was linked: keep the caller's 4xx, release on a 5xx."""
        async with db.service_tx() as conn:
            if status_of(error) >= 500:
                await self.release(conn)
            else:
                await self.store(conn, status_of(error), error.body())


@dataclass(frozen=True)
class Held:
    """Another request holds the key and has no answer yet."""

    claim: Claim
    resource_id: UUID | None  # what it created, when it linked it
    expired: bool  # its claim ran out: it was probably killed


async def begin(
    db: Database,
    *,
    principal: Principal,
    scope: str,
    key: str,
    fingerprint: bytes,
    claim_seconds: float = CLAIM_SECONDS,
) -> Claim | Held | Answer:
    """Claim `key`; or the stored answer to replay; or Held when another request has it.

    An expired claim that linked nothing is taken over: the request that held it died
    before doing anything that must not be done twice."""
    if not 1 <= len(key) <= 255:
        raise Unprocessable("Idempotency-Key must be 1 to 255 characters")
    claim = Claim(owner=owner_of(principal), scope=scope, key=key)
    async with db.service_tx() as conn:
        claimed = await conn.fetchval(
            f"""
            insert into private.idempotency_keys as k
                   (owner, scope, key, request_hash, claimed_until)
            values ($1, $2, $3, $4, now() + make_interval(secs => $5))
            on conflict (owner, scope, key) do update
               set request_hash = excluded.request_hash, status_code = null, response = null,
                   created_at = now(), claimed_until = excluded.claimed_until, resource_id = null
             where k.created_at < now() - interval '{TTL}'
                or (k.status_code is null and k.resource_id is null
                    and k.claimed_until < now() and k.request_hash = excluded.request_hash)
            returning true
            """,
            claim.owner,
            scope,
            key,
            fingerprint,
            claim_seconds,
        )
        if claimed:
            return claim
        previous = await conn.fetchrow(
            "select request_hash, status_code, response, resource_id,"
            " claimed_until < now() as expired"
            " from private.idempotency_keys where owner = $1 and scope = $2 and key = $3",
            claim.owner,
            scope,
            key,
        )
    assert previous is not None  # the insert conflicted with it
    if previous["request_hash"] != fingerprint:
        raise Unprocessable("This Idempotency-Key was used for a different request")
    if previous["status_code"] is not None:
        return replay(previous["status_code"], previous["response"])
    return Held(claim=claim, resource_id=previous["resource_id"], expired=previous["expired"])


async def once(
    db: Database,
    *,
    principal: Principal,
    scope: str,
    key: str | None,
    fingerprint: bytes,
    work: Callable[[], Awaitable[tuple[int, Any]]],
    claim_seconds: float = CLAIM_SECONDS,
) -> Answer:
    """Run `work` (returning status and body) at most once per key; replay its answer after."""
    if key is None:
        status, body = await work()
        return Answer.of(status, body)
    begun = await begin(
        db,
        principal=principal,
        scope=scope,
        key=key,
        fingerprint=fingerprint,
        claim_seconds=claim_seconds,
    )
    if isinstance(begun, Answer):
        return begun
    if isinstance(begun, Held):
        raise Conflict("A request with this Idempotency-Key is still in progress")
    try:
        status, body = await work()
    except AppError as exc:
        await begun.settle(db, exc)
        raise
    except BaseException:
        async with db.service_tx() as conn:
            await begun.release(conn)
        raise
    answer = Answer.of(status, body)
    async with db.service_tx() as conn:
        await begun.store(conn, answer.status, answer.body)
    return answer
