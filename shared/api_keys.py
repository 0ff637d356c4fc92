"""cg_ API keys: issued once, stored as a hash, resolved to their organization per request."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Literal
from uuid import UUID

from shared.auth import ApiKeyPrincipal
from shared.billing import require_feature
from shared.db import Connection, Database
from shared.errors import Forbidden, NotFound, Unauthorized

KEY_PREFIX = "cg_"
Scope = Literal["read", "write"]

# What each scope allows, for the documents (the database enforces it: app.org_ids_with_role,
# and triggers that refuse keys on the organization's configuration).
SCOPES_DOC = (
    "Scopes: `read` reads everything the API serves; `write` also creates, changes and"
    " deletes contacts, companies, deals, tasks, notes and tags (with a manager's rights"
    " over those records). No scope changes pipelines, stages or custom field definitions:"
    " an organization's managers configure them in the app."
)

# Columns safe to show; the hash lives in private.api_key_hashes and is never selected.
PUBLIC_COLUMNS = (
    "id, organization_id, name, prefix, scopes, created_by, created_at, last_used_at, revoked_at"
)


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    # Keys carry 256 random bits, so a fast hash is enough; no salt or KDF needed.
    return hashlib.sha256(key.encode()).digest()


def looks_like_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX) and len(token) > len(KEY_PREFIX) + 20


async def create_api_key(
    *, conn: Connection, organization_id: UUID, name: str, scopes: list[Scope]
) -> dict[str, Any]:
    """Issue a key (the caller must be admin+; checked in the database). Returns it once."""
    key = generate_key()
    row = await conn.fetchrow(
        f"select {PUBLIC_COLUMNS} from app.create_api_key($1, $2, $3, $4, $5)",
        organization_id,
        name,
        sorted(set(scopes)),
        key[: len(KEY_PREFIX) + 8],
        hash_key(key),
    )
    assert row is not None
    return {**dict(row), "key": key}


async def list_api_keys(*, conn: Connection, organization_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"select {PUBLIC_COLUMNS} from public.api_keys"
        " where organization_id = $1 order by created_at desc",
        organization_id,
    )
    return [dict(r) for r in rows]


async def revoke_api_key(*, conn: Connection, key_id: UUID) -> dict[str, Any]:
    """Revoke a key the caller administers; 404 when it cannot see it at all."""
    row = await conn.fetchrow(
        f"update public.api_keys set revoked_at = coalesce(revoked_at, now())"
        f" where id = $1 returning {PUBLIC_COLUMNS}",
        key_id,
    )
    if row is None:
        visible = await conn.fetchval("select true from public.api_keys where id = $1", key_id)
        if visible:
            raise Forbidden("Only admins and owners can revoke API keys")
        raise NotFound("No such API key")
    return dict(row)


async def authenticate(db: Database, key: str) -> ApiKeyPrincipal:
    """The principal of a live key; unknown or revoked keys are refused at once.

    last_used_at is written at most once a minute per key: concurrent requests
    re-check the condition after the row lock, so a burst writes once.
    """
    async with db.service_tx() as conn:
        row = await conn.fetchrow(
            """
            with live as (
              select k.id, k.organization_id, k.scopes
                from private.api_key_hashes h
                join public.api_keys k on k.id = h.api_key_id
               where h.hash = $1 and k.revoked_at is null
            ), touched as (
              update public.api_keys set last_used_at = now()
               where id = (select id from live)
                 and (last_used_at is null or last_used_at < now() - interval '1 minute')
            )
            select * from live
            """,
            hash_key(key),
        )
        if row is not None:  # keys are the public API: the plan must include it
            await require_feature(conn=conn, organization_id=row["organization_id"], feature="api")
    if row is None:
        raise Unauthorized("The API key is unknown or revoked", code="invalid_api_key")
    return ApiKeyPrincipal(
        key_id=row["id"], organization_id=row["organization_id"], scopes=tuple(row["scopes"])
    )
