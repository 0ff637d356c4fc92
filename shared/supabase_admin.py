"""Invitation e-mails through Supabase Auth (GoTrue's REST API, with the service key).

Two documented endpoints send them, each with `?redirect_to=<our accept page>`:

    POST /auth/v1/invite  {"email", "data"}                 a new address (or one invited
                                                           before and not yet confirmed)
    POST /auth/v1/otp     {"email", "create_user": false}   an existing account: a magic link

/invite refuses a confirmed account with 422 `email_exists`; only then is /otp
called. Which one went out is never told to the caller, so the members endpoint
answers known and unknown addresses alike.

Anything else Auth answers is Auth's trouble, not the request's: unreachable,
too slow, 5xx, an unexpected body or refusal is a 502 with a code saying which;
its rate limit (429) is a 503, to be retried later.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx

from shared.errors import AppError, ServiceUnavailable, UpstreamError
from shared.runtime import Runtime

EMAIL_EXISTS = frozenset({"email_exists", "user_already_exists"})
Sent = Literal["invite", "magiclink"]


async def send_invitation_email(runtime: Runtime, *, email: str, redirect_to: str) -> Sent:
    """E-mail `email` a link that signs them in and lands on `redirect_to`."""
    response = await _post(runtime, "invite", {"email": email, "data": {}}, redirect_to)
    if response.status_code == 200:
        _expect_object(response, needs_id=True)
        return "invite"
    if response.status_code == 422 and _auth_error(response)[0] in EMAIL_EXISTS:
        response = await _post(runtime, "otp", {"email": email, "create_user": False}, redirect_to)
        if response.status_code == 200:
            _expect_object(response, needs_id=False)
            return "magiclink"
    raise _failure(response)


async def _post(
    runtime: Runtime, endpoint: str, body: dict[str, Any], redirect_to: str
) -> httpx.Response:
    key = runtime.settings.service_key
    try:
        return await runtime.http.post(
            f"{runtime.settings.supabase_url.rstrip('/')}/auth/v1/{endpoint}",
            params={"redirect_to": redirect_to},
            json=body,
            headers={"apikey": key, "Authorization": f"Bearer {key}"},
        )
    except httpx.TimeoutException as exc:
        raise UpstreamError(
            "Supabase Auth did not answer in time; the invitation was not sent",
            code="auth_timeout",
        ) from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(
            "Supabase Auth is unreachable; the invitation was not sent", code="auth_unreachable"
        ) from exc


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _auth_error(response: httpx.Response) -> tuple[str | None, str | None]:
    """(error code, message) of a GoTrue error body, in either of its documented shapes:
    {"code": 422, "error_code": "…", "msg": "…"} or {"code": "…", "message": "…"}."""
    body = _json(response)
    if not isinstance(body, dict):
        return None, None
    code = body.get("error_code") or body.get("code")
    message = body.get("msg") or body.get("message") or body.get("error_description")
    return (
        code if isinstance(code, str) else None,
        message[:200] if isinstance(message, str) else None,
    )


def _expect_object(response: httpx.Response, *, needs_id: bool) -> None:
    """/invite answers with the user, /otp with {}; anything else is not what was documented."""
    body = _json(response)
    if not isinstance(body, dict) or (needs_id and not isinstance(body.get("id"), str)):
        raise UpstreamError(
            "Supabase Auth answered with an unexpected body; the invitation may not have been sent",
            code="auth_unexpected_response",
            details={"status": response.status_code},
        )


def _failure(response: httpx.Response) -> AppError:
    code, message = _auth_error(response)
    details: dict[str, Any] = {"status": response.status_code}
    if code:
        details["auth_error_code"] = code
    if response.status_code == 429:
        retry_after = response.headers.get("retry-after", "")
        if retry_after.isdigit():
            details["retry_after_seconds"] = int(retry_after)
        return ServiceUnavailable(
            "Supabase Auth is limiting e-mails; try the invitation again later",
            code="auth_rate_limited",
            details=details,
        )
    if response.status_code >= 500:
        return UpstreamError(
            f"Supabase Auth failed ({response.status_code}); the invitation was not sent",
            code="auth_failed",
            details=details,
        )
    if 400 <= response.status_code < 500:
        if message:
            details["auth_message"] = message
        return UpstreamError(
            f"Supabase Auth refused to send the invitation ({response.status_code})",
            code="auth_refused",
            details=details,
        )
    return UpstreamError(
        f"Supabase Auth answered {response.status_code}, which it does not document here",
        code="auth_unexpected_response",
        details=details,
    )
