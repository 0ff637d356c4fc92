"""The handlers of the local Auth (routed by shared/tooling/local_auth.py).

Request and response shapes follow GoTrue's OpenAPI description; statuses and
`error_code`s are the ones GoTrue answers with for the same mistakes.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import jwt
from starlette.requests import Request
from starlette.types import Receive, Scope

from shared.auth.local import mint_access_token, verify_local_token
from shared.runtime import Runtime
from shared.settings import Settings
from shared.tooling import local_auth_store as store
from shared.tooling.local_auth_store import AuthApiError

ACCESS_TOKEN_SECONDS = 3600  # GoTrue's default JWT_EXP
MIN_PASSWORD = 6  # GoTrue's default minimum length
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
log = logging.getLogger("connectgain.local_auth")


@dataclass
class Redirect:
    url: str


class Call:
    """One request: its headers, query, JSON body, and the checks of who sends it."""

    runtime: Runtime

    def __init__(self, settings: Settings, scope: Scope, receive: Receive) -> None:
        self.settings = settings
        self.request = Request(scope, receive)
        self.headers = self.request.headers
        self.query = self.request.query_params

    def require_apikey(self) -> None:
        key = self.headers.get("apikey") or self.query.get("apikey")
        if not key:
            raise AuthApiError(401, "no_api_key", "No API key found in request")
        known = (self.settings.local_key("anon"), self.settings.service_key)
        if not any(hmac.compare_digest(key, k) for k in known):
            raise AuthApiError(401, "invalid_api_key", "Invalid API key")

    def bearer(self) -> str:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthApiError(401, "no_authorization", "This endpoint requires a Bearer token")
        return token.strip()

    def require_admin(self) -> None:
        token = self.bearer()
        if hmac.compare_digest(token, self.settings.service_key):
            return
        secret = self.settings.jwt_secret
        try:
            claims = jwt.decode(token, secret.get_secret_value() if secret else "", ["HS256"])
        except jwt.PyJWTError:
            claims = {}
        if claims.get("role") != "service_role":
            raise AuthApiError(403, "not_admin", "User not allowed")

    def claims(self) -> dict[str, Any]:
        try:
            return verify_local_token(self.settings, self.bearer())
        except jwt.ExpiredSignatureError as exc:
            raise AuthApiError(
                403, "bad_jwt", "invalid JWT: unable to parse or verify signature, token is expired"
            ) from exc
        except jwt.PyJWTError as exc:
            raise AuthApiError(
                403, "bad_jwt", f"invalid JWT: unable to parse or verify signature, {exc}"
            ) from exc

    async def body(self) -> dict[str, Any]:
        raw = await self.request.body()
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise AuthApiError(400, "bad_json", "Could not parse request body as JSON") from exc
        if not isinstance(data, dict):
            raise AuthApiError(400, "bad_json", "Could not parse request body as JSON")
        return data


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    return value.strip() if isinstance(value, str) else ""


def _email(body: dict[str, Any], status: int = 400) -> str:
    email = _text(body, "email").lower()
    if not email:
        raise AuthApiError(status, "validation_failed", "An email address is required")
    if not _EMAIL.match(email) or len(email) > 255:
        raise AuthApiError(
            status, "validation_failed", "Unable to validate email address: invalid format"
        )
    return email


def _password(body: dict[str, Any]) -> str:
    password = body.get("password")
    if not isinstance(password, str) or not password:
        raise AuthApiError(422, "validation_failed", "Signup requires a valid password")
    if len(password) < MIN_PASSWORD or len(password.encode()) > 72:  # bcrypt's limit
        raise AuthApiError(
            422,
            "weak_password",
            f"Password should be at least {MIN_PASSWORD} characters.",
            weak_password={"reasons": ["length"]},
        )
    return password


def _metadata(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AuthApiError(400, "validation_failed", f"{name} must be a JSON object")
    return value


async def _session(call: Call, user_id: UUID, method: str) -> Any:
    """A new session for a user who just proved who they are."""
    async with call.runtime.db.service_tx() as conn:
        session_id, refresh = await store.start_session(conn, user_id=user_id, method=method)
        user = store.user_json(await store.user_by_id(conn, user_id=user_id))
    return _tokens(call, session_id, method, refresh, user)


async def _refreshed(call: Call, refresh: str) -> Any:
    async with call.runtime.db.service_tx() as conn:
        rotated = await store.rotate_refresh(conn, token=refresh)
        if rotated is not None:
            user_id, session_id, method, child = rotated
            user = store.user_json(await store.user_by_id(conn, user_id=user_id))
    if rotated is None:  # raised after the commit that ended the session
        raise AuthApiError(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used")
    return _tokens(call, session_id, method, child, user)


def _tokens(
    call: Call, session_id: UUID, method: str, refresh: str, user: dict[str, Any]
) -> dict[str, Any]:
    now = int(time.time())
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
    email = _email(body, status=422)
    password = _password(body)
    async with call.runtime.db.service_tx() as conn:
        if await store.user_by_email(conn, email=email) is not None:
            raise AuthApiError(422, "user_already_exists", "User already registered")
        # Local Supabase confirms sign-ups at once (enable_confirmations = false).
        row = await store.create_user(
            conn,
            email=email,
            password=password,
            user_metadata=_metadata(body, "data"),
            confirmed=True,
        )
    return await _session(call, row["id"], "password")


async def token(call: Call) -> Any:
    grant = call.query.get("grant_type")
    body = await call.body()
    if grant == "password":
        email = _email(body)
        password = body.get("password")
        if not isinstance(password, str) or not password:
            raise AuthApiError(400, "validation_failed", "A password is required")
        async with call.runtime.db.service_tx() as conn:
            row = await store.check_password(conn, email=email, password=password)
        if row is None:
            raise AuthApiError(400, "invalid_credentials", "Invalid login credentials")
        if row["email_confirmed_at"] is None:
            raise AuthApiError(400, "email_not_confirmed", "Email not confirmed")
        return await _session(call, row["id"], "password")
    if grant == "refresh_token":
        refresh = _text(body, "refresh_token")
        if not refresh:
            raise AuthApiError(400, "validation_failed", "refresh_token required")
        return await _refreshed(call, refresh)
    raise AuthApiError(400, "unsupported_grant_type", "unsupported_grant_type")


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
    password = _password(body) if body.get("password") is not None else None
    data = _metadata(body, "data")
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


def _redirect_to(call: Call, body: dict[str, Any]) -> str:
    value = call.query.get("redirect_to") or body.get("redirect_to")
    return value if isinstance(value, str) and value else call.settings.public_base_url


async def _link(call: Call, conn: Any, row: Any, kind: str, redirect_to: str) -> dict[str, Any]:
    hashed = await store.issue_link_token(conn, user_id=row["id"], kind=kind, email=row["email"])
    query = urlencode({"token": hashed, "type": kind, "redirect_to": redirect_to})
    link = f"{call.settings.supabase_url.rstrip('/')}/auth/v1/verify?{query}"
    return {
        "action_link": link,
        "email_otp": "",
        "hashed_token": hashed,
        "redirect_to": redirect_to,
        "verification_type": kind,
    }


async def _mail(call: Call, conn: Any, row: Any, kind: str, redirect_to: str) -> None:
    link = (await _link(call, conn, row, kind, redirect_to))["action_link"]
    await store.record_mail(conn, email=row["email"], kind=kind, link=link)
    log.info("local Auth: %s mail to %s (not sent): %s", kind, row["email"], link)


async def invite(call: Call) -> Any:
    call.require_admin()
    body = await call.body()
    email = _email(body, status=422)
    async with call.runtime.db.service_tx() as conn:
        row = await store.user_by_email(conn, email=email)
        if row is not None and row["email_confirmed_at"] is not None:
            raise AuthApiError(
                422, "email_exists", "A user with this email address has already been registered"
            )
        if row is None:
            row = await store.create_user(
                conn,
                email=email,
                password=None,
                user_metadata=_metadata(body, "data"),
                confirmed=False,
                invited=True,
            )
        await _mail(call, conn, row, "invite", _redirect_to(call, body))
    return store.user_json(row)


async def otp(call: Call) -> Any:
    body = await call.body()
    email = _email(body, status=422)
    async with call.runtime.db.service_tx() as conn:
        row = await store.user_by_email(conn, email=email)
        if row is None:
            if body.get("create_user") is False:
                raise AuthApiError(422, "otp_disabled", "Signups not allowed for otp")
            row = await store.create_user(
                conn,
                email=email,
                password=None,
                user_metadata=_metadata(body, "data"),
                confirmed=False,
            )
        await _mail(call, conn, row, "magiclink", _redirect_to(call, body))
    return {}


async def admin_create_user(call: Call) -> Any:
    call.require_admin()
    body = await call.body()
    email = _email(body)
    password = _password(body) if body.get("password") is not None else None
    async with call.runtime.db.service_tx() as conn:
        if await store.user_by_email(conn, email=email) is not None:
            raise AuthApiError(
                422, "email_exists", "A user with this email address has already been registered"
            )
        row = await store.create_user(
            conn,
            email=email,
            password=password,
            user_metadata=_metadata(body, "user_metadata"),
            confirmed=body.get("email_confirm") is True,
        )
    return store.user_json(row)


async def generate_link(call: Call) -> Any:
    call.require_admin()
    body = await call.body()
    kind = _text(body, "type")
    if kind not in ("signup", "invite", "magiclink", "recovery"):
        raise AuthApiError(
            422, "validation_failed", "type must be signup, invite, magiclink or recovery"
        )
    email = _email(body)
    password = _password(body) if kind == "signup" else None
    async with call.runtime.db.service_tx() as conn:
        row = await store.user_by_email(conn, email=email)
        if row is None and kind in ("magiclink", "recovery"):
            raise AuthApiError(404, "user_not_found", "User with this email not found")
        if row is not None and kind in ("signup", "invite") and row["email_confirmed_at"]:
            raise AuthApiError(
                422, "email_exists", "A user with this email address has already been registered"
            )
        if row is None:
            row = await store.create_user(
                conn,
                email=email,
                password=password,
                user_metadata=_metadata(body, "data"),
                confirmed=False,
                invited=kind == "invite",
            )
        properties = await _link(call, conn, row, kind, _redirect_to(call, body))
    return {**store.user_json(row), **properties}


async def verify(call: Call) -> Any:
    """Redeems a link: GET (the e-mail's link) redirects with the session in the URL's
    fragment, as the implicit flow does; POST {type, token_hash} answers the session."""
    body = {} if call.request.method == "GET" else await call.body()
    kind = call.query.get("type") if call.request.method == "GET" else _text(body, "type")
    token_hash = call.query.get("token") or _text(body, "token_hash") or _text(body, "token")
    if not kind or not token_hash:
        raise AuthApiError(400, "validation_failed", "Verify requires a type and a token")
    kinds = {"magiclink", "signup", "email"} if kind in ("magiclink", "email") else {kind}
    async with call.runtime.db.service_tx() as conn:
        user_id = await store.redeem_link_token(conn, token_hash=token_hash, kinds=kinds)
    session = await _session(call, user_id, "otp")
    if call.request.method != "GET":
        return session
    fragment = urlencode(
        {k: session[k] for k in ("access_token", "expires_at", "expires_in", "refresh_token")}
        | {"token_type": "bearer", "type": kind}
    )
    return Redirect(f"{_redirect_to(call, body)}#{fragment}")
