"""Supabase Auth's admin API (GoTrue), called with the service key through `supabase_auth`."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from supabase_auth import AsyncGoTrueAdminAPI
from supabase_auth.errors import AuthApiError, AuthError
from supabase_auth.types import InviteUserByEmailOptions

from shared.errors import Conflict, Unprocessable, UpstreamError
from shared.web import Runtime


def auth_admin(runtime: Runtime) -> AsyncGoTrueAdminAPI:
    key = runtime.settings.service_key
    return AsyncGoTrueAdminAPI(
        url=f"{runtime.settings.supabase_url.rstrip('/')}/auth/v1",
        headers={"apikey": key, "Authorization": f"Bearer {key}"},
        http_client=runtime.http,
    )


async def invite_user(
    runtime: Runtime,
    *,
    email: str,
    redirect_to: str | None = None,
    data: dict[str, Any] | None = None,
) -> UUID:
    """Send Supabase's invite e-mail; returns the new auth user's id."""
    options: InviteUserByEmailOptions = {"data": data or {}}
    if redirect_to:
        options["redirect_to"] = redirect_to
    try:
        response = await auth_admin(runtime).invite_user_by_email(email, options)
    except AuthApiError as exc:
        if exc.status == 422 and exc.code in {"email_exists", "user_already_exists"}:
            raise Conflict(f"{email} already has an account", details={"email": email}) from exc
        if 400 <= exc.status < 500:
            raise Unprocessable(f"Supabase Auth refused the invite: {exc.message}") from exc
        raise UpstreamError(f"Supabase Auth failed: {exc.message}") from exc
    except AuthError as exc:
        raise UpstreamError(f"Supabase Auth is unreachable: {exc.message}") from exc
    if response.user is None:
        raise UpstreamError("Supabase Auth answered the invite without a user")
    return UUID(str(response.user.id))
