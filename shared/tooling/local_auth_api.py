"""The local Auth's session routes: sign-up, the token grants, the user, logout
(routed by local_auth.py; requests in local_auth_call.py, links in local_auth_links.py).

Request and response shapes follow GoTrue's OpenAPI description; statuses and
`error_code`s are the ones GoTrue answers with for the same mistakes.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shared.auth.local import mint_access_token
from shared.tooling import local_auth_store as store
from shared.tooling.local_auth_call import Call, email_of, metadata_of, password_of, text_of
from shared.tooling.local_auth_store import AuthApiError

ACCESS_TOKEN_SECONDS = 3600  # GoTrue's default JWT_EXP


async def new_session(call: Call, user_id: UUID, method: str) -> Any:
    """A new session for a user who just proved who they are."""
    async with call.runtime.db.service_tx() as conn:
        session_id, refresh = await store.start_session(
            conn, user_id=user_id, method=method, now=call.policy.clock()
        )
        user = store.user_json(await store.user_by_id(conn, user_id=user_id))
    return _tokens(call, session_id, method, refresh, user)


async def _refreshed(call: Call, refresh: str) -> Any:
    async with call.runtime.db.service_tx() as conn:
        refreshed = await store.refresh(
            conn,
            token=refresh,
            now=call.policy.clock(),
            reuse_seconds=call.policy.refresh_token_reuse_seconds,
        )
        if refreshed is not None:
            user = store.user_json(await store.user_by_id(conn, user_id=refreshed.user_id))
    if refreshed is None:  # raised after the commit that ended the session
        raise AuthApiError(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used")
    return _tokens(call, refreshed.session_id, refreshed.amr_method, refreshed.refresh_token, user)


def _tokens(
    call: Call, session_id: UUID, method: str, refresh: str, user: dict[str, Any]
) -> dict[str, Any]:
    now = int(call.policy.clock())
    access = mint_access_token(
        call.settings,
        user_id=UUID(user["id"]),
        email=user["email"],
        ttl_seconds=ACCESS_TOKEN_SECONDS,
        session_id=session_id,
        user_metadata=user["user_metadata"],
        amr_method=method,
        now=now,
    )
    return {
        "access_token": access,
        "token_type": "bearer",
        "expires_in": ACCESS_TOKEN_SECONDS,
        "expires_at": now + ACCESS_TOKEN_SECONDS,
        "refresh_token": refresh,
        "user": user,
    }


async def signup(call: Call) -> Any:
    body = await call.body()
    email = email_of(body, status=422)
    password = password_of(body)
    async with call.runtime.db.service_tx() as conn:
        if await store.user_by_email(conn, email=email) is not None:
            raise AuthApiError(422, "user_already_exists", "User already registered")
        # Local Supabase confirms sign-ups at once (enable_confirmations = false).
        row = await store.create_user(
            conn,
            email=email,
            password=password,
            user_metadata=metadata_of(body, "data"),
            confirmed=True,
        )
    return await new_session(call, row["id"], "password")


async def token(call: Call) -> Any:
    grant = call.query.get("grant_type")
    body = await call.body()
    if grant == "password":
        email = email_of(body)
        password = body.get("password") or ""
        async with call.runtime.db.service_tx() as conn:
            row = await store.check_password(conn, email=email, password=password)
        if row is None:
            raise AuthApiError(400, "invalid_credentials", "Invalid login credentials")
        if row["email_confirmed_at"] is None:
            raise AuthApiError(400, "email_not_confirmed", "Email not confirmed")
        return await new_session(call, row["id"], "password")
    if grant == "refresh_token":
        refresh = text_of(body, "refresh_token")
        if not refresh:
            raise AuthApiError(400, "validation_failed", "refresh_token required")
        return await _refreshed(call, refresh)
    raise AuthApiError(400, "invalid_credentials", "unsupported_grant_type")  # as GoTrue says it


async def _current(call: Call) -> tuple[dict[str, Any], Any]:
    claims = call.claims()
    async with call.runtime.db.service_tx() as conn:
        if not await store.session_exists(conn, session_id=UUID(claims["session_id"])):
            raise AuthApiError(
                403, "session_not_found", "Session from session_id claim in JWT does not exist"
            )
        row = await store.user_by_id(conn, user_id=UUID(claims["sub"]))
    if row is None:
        raise AuthApiError(403, "user_not_found", "User from sub claim in JWT does not exist")
    return claims, row


async def get_user(call: Call) -> Any:
    return store.user_json((await _current(call))[1])


async def update_user(call: Call) -> Any:
    """The signed-in user sets a password (an invitee's first) or their metadata."""
    _, row = await _current(call)
    body = await call.body()
    if body.get("email") not in (None, row["email"]) or body.get("phone"):
        raise AuthApiError(
            422, "validation_failed", "The local Auth does not change e-mail addresses or phones"
        )
    password = password_of(body) if body.get("password") is not None else None
    data = metadata_of(body, "data")
    async with call.runtime.db.service_tx() as conn:
        await store.update_user(conn, user_id=row["id"], password=password, user_metadata=data)
        return store.user_json(await store.user_by_id(conn, user_id=row["id"]))


async def logout(call: Call) -> None:
    scope = call.query.get("scope", "global")
    if scope not in ("global", "local", "others"):
        raise AuthApiError(400, "validation_failed", "scope must be global, local or others")
    claims, row = await _current(call)
    async with call.runtime.db.service_tx() as conn:
        await store.end_sessions(
            conn, user_id=row["id"], session_id=UUID(claims["session_id"]), scope=scope
        )
