"""The errors a function can answer with, and their one mapping to HTTP.

    AppError                      500 internal_error
    ├── BadRequest                400 bad_request        (body is not what the endpoint reads)
    ├── Unauthorized              401 unauthorized       (no, bad or expired credentials)
    ├── Forbidden                 403 forbidden          (authenticated, not allowed)
    ├── NotFound                  404 not_found          (also: another organization's row)
    ├── Conflict                  409 conflict           (state forbids it: last owner, duplicate)
    ├── PaymentRequired           402 plan_limit, feature_unavailable (the plan does not allow it)
    ├── PayloadTooLarge           413 payload_too_large
    ├── Unprocessable             422 validation_error   (well-formed but invalid input)
    ├── RateLimited               429 rate_limited
    ├── UpstreamError             502 upstream_error     (a provider or Supabase failed or refused)
    └── ServiceUnavailable        503 service_unavailable (a dependency did not act; try later)

Every error renders as {"error": {"code", "message", "details"?}}. Postgres
errors raised by constraints, triggers and policies map onto the same classes
in `from_postgres`, so a check in the database and one in Python look alike.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg


class AppError(Exception):
    code: str = "internal_error"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


class BadRequest(AppError):
    code = "bad_request"


class Unauthorized(AppError):
    code = "unauthorized"


class Forbidden(AppError):
    code = "forbidden"


class NotFound(AppError):
    code = "not_found"


class Conflict(AppError):
    code = "conflict"


class PaymentRequired(AppError):
    code = "payment_required"


class PayloadTooLarge(AppError):
    code = "payload_too_large"


class Unprocessable(AppError):
    code = "validation_error"


class RateLimited(AppError):
    code = "rate_limited"


class UpstreamError(AppError):
    code = "upstream_error"


class ServiceUnavailable(AppError):
    code = "service_unavailable"


HTTP_STATUS: dict[type[AppError], int] = {
    AppError: 500,
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PaymentRequired: 402,
    PayloadTooLarge: 413,
    Unprocessable: 422,
    RateLimited: 429,
    UpstreamError: 502,
    ServiceUnavailable: 503,
}


def status_of(error: AppError) -> int:
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


# SQLSTATE classes that mean "the input was wrong", not "the server broke".
_POSTGRES_ERRORS: dict[str, tuple[type[AppError], str]] = {
    "23505": (Conflict, "conflict"),
    "23503": (Unprocessable, "invalid_reference"),
    "23502": (Unprocessable, "missing_value"),
    "23514": (Unprocessable, "validation_error"),
    "22P02": (Unprocessable, "invalid_value"),
    "22023": (Unprocessable, "invalid_value"),
    "22007": (Unprocessable, "invalid_value"),
    "22008": (Unprocessable, "invalid_value"),
    "22003": (Unprocessable, "invalid_value"),
    "42501": (Forbidden, "forbidden"),
    # Raised by our own triggers with `raise exception ... using errcode = 'CG...'`.
    "CG400": (BadRequest, "bad_request"),
    "CG401": (Unauthorized, "invalid_signature"),
    "CG403": (Forbidden, "forbidden"),
    "CG404": (NotFound, "not_found"),
    "CG409": (Conflict, "conflict"),
    "CG422": (Unprocessable, "validation_error"),
    # A plan limit (private.enforce_plan_limit): PostgREST answers PTxyz with HTTP xyz.
    "PT402": (PaymentRequired, "plan_limit"),
}


def from_postgres(exc: asyncpg.PostgresError) -> AppError | None:
    """The AppError for a Postgres error caused by the request, or None for a real fault."""
    mapped = _POSTGRES_ERRORS.get(exc.sqlstate or "")
    if mapped is None:
        return None
    cls, code = mapped
    if exc.sqlstate == "PT402":  # its detail is the limit as JSON: {limit, value, usage, plan}
        return cls(str(exc.args[0]), details=_json_detail(exc), code=code)
    details: dict[str, Any] = {}
    for attr in ("detail", "hint", "column_name", "constraint_name"):
        value = getattr(exc, attr, None)
        if value:
            details[attr.removesuffix("_name")] = value
    return cls(str(exc.args[0]) if exc.args else str(exc), details=details or None, code=code)


def _json_detail(exc: asyncpg.PostgresError) -> Any:
    detail = getattr(exc, "detail", None)
    try:
        return json.loads(detail) if detail else None
    except ValueError:
        return {"detail": detail}
