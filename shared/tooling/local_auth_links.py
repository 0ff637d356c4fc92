"""The local Auth's links and admin routes: invitations, magic links, generated links,
their verification, and users made by the service key (see local_auth.py)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from shared.tooling import local_auth_store as store
from shared.tooling.local_auth_api import new_session
from shared.tooling.local_auth_call import (
    Call,
    Redirect,
    email_of,
    metadata_of,
    password_of,
    text_of,
)
from shared.tooling.local_auth_store import AuthApiError

log = logging.getLogger("connectgain.local_auth")


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


def _email_exists() -> AuthApiError:
    return AuthApiError(
        422, "email_exists", "A user with this email address has already been registered"
    )


async def _unconfirmed_user(
    conn: Any, body: dict[str, Any], email: str, *, password: str | None = None, invited: bool
) -> Any:
    """The user a link is for, made when missing: unconfirmed until the link is redeemed."""
    return await store.create_user(
        conn,
        email=email,
        password=password,
        user_metadata=metadata_of(body, "data"),
        confirmed=False,
        invited=invited,
    )


async def _mail(call: Call, conn: Any, row: Any, kind: str, redirect_to: str) -> None:
    link = (await _link(call, conn, row, kind, redirect_to))["action_link"]
    await store.record_mail(conn, email=row["email"], kind=kind, link=link)
    log.info("local Auth: %s mail to %s (not sent): %s", kind, row["email"], link)


async def invite(call: Call) -> Any:
    call.require_admin()
    body = await call.body()
    email = email_of(body, status=422)
    async with call.runtime.db.service_tx() as conn:
        row = await store.user_by_email(conn, email=email)
        if row is not None and row["email_confirmed_at"] is not None:
            raise _email_exists()
        if row is None:
            row = await _unconfirmed_user(conn, body, email, invited=True)
        await _mail(call, conn, row, "invite", _redirect_to(call, body))
    return store.user_json(row)


async def otp(call: Call) -> Any:
    body = await call.body()
    email = email_of(body, status=422)
    async with call.runtime.db.service_tx() as conn:
        row = await store.user_by_email(conn, email=email)
        if row is None:
            if body.get("create_user") is False:
                raise AuthApiError(422, "otp_disabled", "Signups not allowed for otp")
            row = await _unconfirmed_user(conn, body, email, invited=False)
        await _mail(call, conn, row, "magiclink", _redirect_to(call, body))
    return {}


async def admin_create_user(call: Call) -> Any:
    call.require_admin()
    body = await call.body()
    email = email_of(body)
    password = password_of(body) if body.get("password") is not None else None
    async with call.runtime.db.service_tx() as conn:
        if await store.user_by_email(conn, email=email) is not None:
            raise _email_exists()
        row = await store.create_user(
            conn,
            email=email,
            password=password,
            user_metadata=metadata_of(body, "user_metadata"),
            confirmed=body.get("email_confirm") is True,
        )
    return store.user_json(row)


async def generate_link(call: Call) -> Any:
    call.require_admin()
    body = await call.body()
    kind = text_of(body, "type")
    if kind not in ("signup", "invite", "magiclink", "recovery"):
        raise AuthApiError(
            422, "validation_failed", "type must be signup, invite, magiclink or recovery"
        )
    email = email_of(body)
    password = password_of(body) if kind == "signup" else None
    async with call.runtime.db.service_tx() as conn:
        row = await store.user_by_email(conn, email=email)
        if row is None and kind in ("magiclink", "recovery"):
            raise AuthApiError(404, "user_not_found", "User with this email not found")
        if row is not None and kind in ("signup", "invite") and row["email_confirmed_at"]:
            raise _email_exists()
        if row is None:
            row = await _unconfirmed_user(
                conn, body, email, password=password, invited=kind == "invite"
            )
        properties = await _link(call, conn, row, kind, _redirect_to(call, body))
    return {**store.user_json(row), **properties}


async def verify(call: Call) -> Any:
    """Redeems a link: GET (the e-mail's link) redirects with the session in the URL's
    fragment, as the implicit flow does; POST {type, token_hash} answers the session."""
    body = {} if call.request.method == "GET" else await call.body()
    kind = call.query.get("type") if call.request.method == "GET" else text_of(body, "type")
    token_hash = call.query.get("token") or text_of(body, "token_hash") or text_of(body, "token")
    if not kind or not token_hash:
        raise AuthApiError(400, "validation_failed", "Verify requires a type and a token")
    kinds = {"magiclink", "signup", "email"} if kind in ("magiclink", "email") else {kind}
    try:
        async with call.runtime.db.service_tx() as conn:
            user_id = await store.redeem_link_token(conn, token_hash=token_hash, kinds=kinds)
    except AuthApiError as exc:
        if call.request.method != "GET":
            raise
        # A browser lands on the app either way; the app reads the error from the URL.
        error = {"error": "access_denied", "error_code": exc.code, "error_description": exc.message}
        return Redirect(f"{_redirect_to(call, body)}#{urlencode(error)}")
    session = await new_session(call, user_id, "otp")
    if call.request.method != "GET":
        return session
    fragment = urlencode(
        {k: session[k] for k in ("access_token", "expires_at", "expires_in", "refresh_token")}
        | {"token_type": "bearer", "type": kind}
    )
    return Redirect(f"{_redirect_to(call, body)}#{fragment}")
