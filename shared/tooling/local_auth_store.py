"""What the local Auth keeps in the stand-in `auth` schema: users, sessions, tokens.

Passwords are hashed with pgcrypto's bcrypt (`crypt(…, gen_salt('bf', 10))`, the
cost GoTrue uses), so the hashes look like a project's. Refresh tokens are opaque
and rotate: using one revokes it and issues its child in the same session. A spent
one is reused as GoTrue allows it (see `refresh`); any other reuse ends the session.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID, uuid4

from shared.db import Connection
from shared.errors import AppError

USER_COLUMNS = (
    "id, aud, role, email, phone, email_confirmed_at, invited_at, confirmation_sent_at,"
    " last_sign_in_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at,"
    " is_anonymous"
)


class AuthApiError(AppError):
    """An error of GoTrue's API: its HTTP status and its `error_code`."""

    def __init__(self, status: int, error_code: str, message: str, **extra: Any) -> None:
        super().__init__(message, code=error_code)
        self.status = status
        self.extra = extra


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def user_json(row: Any) -> dict[str, Any]:
    """A user as GoTrue renders it."""
    user_id = str(row["id"])
    confirmed = _iso(row["email_confirmed_at"])
    email = row["email"] or ""
    identity = {
        "identity_id": user_id,
        "id": user_id,
        "user_id": user_id,
        "identity_data": {
            "email": email,
            "email_verified": confirmed is not None,
            "phone_verified": False,
            "sub": user_id,
        },
        "provider": "email",
        "last_sign_in_at": _iso(row["last_sign_in_at"]),
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "email": email,
    }
    return {
        "id": user_id,
        "aud": row["aud"] or "authenticated",
        "role": row["role"] or "authenticated",
        "email": email,
        "email_confirmed_at": confirmed,
        "confirmed_at": confirmed,
        "invited_at": _iso(row["invited_at"]),
        "confirmation_sent_at": _iso(row["confirmation_sent_at"]),
        "last_sign_in_at": _iso(row["last_sign_in_at"]),
        "phone": row["phone"] or "",
        "app_metadata": row["raw_app_meta_data"] or {"provider": "email", "providers": ["email"]},
        "user_metadata": row["raw_user_meta_data"] or {},
        "identities": [identity],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "is_anonymous": bool(row["is_anonymous"]),
    }


async def user_by_email(conn: Connection, *, email: str) -> Any:
    return await conn.fetchrow(f"select {USER_COLUMNS} from auth.users where email = $1", email)


async def user_by_id(conn: Connection, *, user_id: UUID) -> Any:
    return await conn.fetchrow(f"select {USER_COLUMNS} from auth.users where id = $1", user_id)


async def create_user(
    conn: Connection,
    *,
    email: str,
    password: str | None,
    user_metadata: dict[str, Any],
    confirmed: bool,
    invited: bool = False,
) -> Any:
    return await conn.fetchrow(
        "insert into auth.users (email, encrypted_password, raw_app_meta_data,"
        " raw_user_meta_data, email_confirmed_at, invited_at, confirmation_sent_at)"
        " values ($1, case when $2::text is null then null"
        " else extensions.crypt($2, extensions.gen_salt('bf', 10)) end, $3, $4,"
        " case when $5 then now() end, case when $6 then now() end,"
        " case when $6 then now() end)"
        f" returning {USER_COLUMNS}",
        email,
        password,
        {"provider": "email", "providers": ["email"]},
        user_metadata,
        confirmed,
        invited,
    )


async def update_user(
    conn: Connection, *, user_id: UUID, password: str | None, user_metadata: dict[str, Any]
) -> None:
    """A new password (hashed) if given; metadata merged into the stored one, as GoTrue does."""
    await conn.execute(
        "update auth.users set encrypted_password = case when $2::text is null"
        " then encrypted_password else extensions.crypt($2, extensions.gen_salt('bf', 10)) end,"
        " raw_user_meta_data = coalesce(raw_user_meta_data, '{}'::jsonb) || $3::jsonb,"
        " updated_at = now() where id = $1",
        user_id,
        password,
        user_metadata,
    )


async def check_password(conn: Connection, *, email: str, password: str) -> Any:
    """The user whose password this is, or None (unknown address, no password, mismatch)."""
    return await conn.fetchrow(
        f"select {USER_COLUMNS} from auth.users where email = $1"
        " and encrypted_password is not null"
        " and encrypted_password = extensions.crypt($2, encrypted_password)",
        email,
        password,
    )


async def start_session(
    conn: Connection, *, user_id: UUID, method: str, now: float
) -> tuple[UUID, str]:
    """A new session and its first refresh token; the user is marked signed in."""
    session_id = uuid4()
    await conn.execute(
        "insert into auth.sessions (id, user_id, amr_method) values ($1, $2, $3)",
        session_id,
        user_id,
        method,
    )
    await conn.execute("update auth.users set last_sign_in_at = now() where id = $1", user_id)
    return session_id, await _issue_refresh(conn, user_id=user_id, session_id=session_id, now=now)


async def _issue_refresh(
    conn: Connection, *, user_id: UUID, session_id: UUID, now: float, parent: str | None = None
) -> str:
    # created_at is the moment of the refresh (or sign-in): the reuse interval starts there.
    token = secrets.token_urlsafe(16)
    await conn.execute(
        "insert into auth.refresh_tokens (token, user_id, session_id, parent, created_at)"
        " values ($1, $2, $3, $4, to_timestamp($5))",
        token,
        user_id,
        session_id,
        parent,
        now,
    )
    return token


class Refreshed(NamedTuple):
    user_id: UUID
    session_id: UUID
    amr_method: str
    refresh_token: str  # the one to answer with: a new child, or the session's current one


async def refresh(
    conn: Connection, *, token: str, now: float, reuse_seconds: float
) -> Refreshed | None:
    """The refresh_token grant, as GoTrue decides it. A live token is spent for its
    child. A spent one answers the session's current token, and issues none, when it
    is the current token's parent (a client that lost the answer: at any time, which
    supabase-js counts on) or when the session was refreshed at most `reuse_seconds`
    ago (concurrent refreshes: tabs, server and browser). Any other reuse may be a
    stolen token: the session and all its tokens end, and None is returned, which the
    caller must commit before refusing."""
    # One refresh of a session at a time; what it decides on is read once the lock is
    # held, so a refresh that waited sees the one before it.
    locked = await conn.fetchval(
        "select s.id from auth.refresh_tokens r join auth.sessions s on s.id = r.session_id"
        " where r.token = $1 for update of s",
        token,
    )
    row = locked and await conn.fetchrow(
        "select r.user_id, r.session_id, r.revoked, s.amr_method from auth.refresh_tokens r"
        " join auth.sessions s on s.id = r.session_id where r.token = $1",
        token,
    )
    if not row:
        raise AuthApiError(
            400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found"
        )
    user_id, session_id, method = row["user_id"], row["session_id"], row["amr_method"]
    if not row["revoked"]:
        await conn.execute("update auth.refresh_tokens set revoked = true where token = $1", token)
        child = await _issue_refresh(
            conn, user_id=user_id, session_id=session_id, now=now, parent=token
        )
        return Refreshed(user_id, session_id, method, child)
    # The current token was issued by the session's last refresh (or its sign-in).
    current = await conn.fetchrow(
        "select token, parent, extract(epoch from created_at)::float8 as issued_at"
        " from auth.refresh_tokens where session_id = $1 and not revoked"
        " order by id desc limit 1",
        session_id,
    )
    if current is not None and (
        current["parent"] == token or now <= current["issued_at"] + reuse_seconds
    ):
        return Refreshed(user_id, session_id, method, current["token"])
    await conn.execute("delete from auth.sessions where id = $1", session_id)
    return None


async def session_exists(conn: Connection, *, session_id: UUID) -> bool:
    return bool(await conn.fetchval("select 1 from auth.sessions where id = $1", session_id))


async def end_sessions(conn: Connection, *, user_id: UUID, session_id: UUID, scope: str) -> None:
    """Logout: `global` ends every session of the user, `local` this one, `others` the rest."""
    await conn.execute(
        "delete from auth.sessions where user_id = $1 and case $3::text"
        " when 'global' then true when 'local' then id = $2 else id <> $2 end",
        user_id,
        session_id,
        scope,
    )


def hash_link_token(token: str) -> str:
    return hashlib.sha224(token.encode()).hexdigest()


async def issue_link_token(conn: Connection, *, user_id: UUID, kind: str, email: str) -> str:
    """A one-time token for a verify link; only its hash is kept, as GoTrue keeps it."""
    token = secrets.token_urlsafe(24)
    hashed = hash_link_token(token)
    await conn.execute(
        "delete from auth.one_time_tokens where user_id = $1 and token_type = $2", user_id, kind
    )
    await conn.execute(
        "insert into auth.one_time_tokens (user_id, token_type, token_hash, relates_to)"
        " values ($1, $2, $3, $4)",
        user_id,
        kind,
        hashed,
        email,
    )
    return hashed


async def redeem_link_token(conn: Connection, *, token_hash: str, kinds: set[str]) -> UUID:
    """The user a link was for; the link is spent and the address confirmed."""
    user_id: UUID | None = await conn.fetchval(
        "delete from auth.one_time_tokens where token_hash = $1 and token_type = any($2::text[])"
        " and created_at > now() - interval '24 hours' returning user_id",
        token_hash,
        sorted(kinds),
    )
    if user_id is None:
        raise AuthApiError(403, "otp_expired", "Email link is invalid or has expired")
    await conn.execute(
        "update auth.users set email_confirmed_at = coalesce(email_confirmed_at, now())"
        " where id = $1",
        user_id,
    )
    return user_id


async def record_mail(conn: Connection, *, email: str, kind: str, link: str) -> None:
    await conn.execute(
        "insert into auth.local_outbox (email, kind, link) values ($1, $2, $3)", email, kind, link
    )
