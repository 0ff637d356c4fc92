"""One request to the local Auth (Call): who sends it, and its JSON body read as GoTrue
reads it (routes in local_auth_api.py and local_auth_links.py).

GoTrue decodes a body into a typed struct: a body that is not JSON, or a field of
the wrong type, is a 400 `bad_json`; a body over 1 MiB a 413. Values PostgreSQL
cannot store (NUL, lone surrogates, NaN, nesting past the parsers' depth) are
refused here with a 400, where GoTrue would fail later with a 500.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from starlette.requests import Request
from starlette.types import Receive, Scope

from shared import safejson
from shared.auth.local import verify_local_token
from shared.errors import BadRequest
from shared.runtime import Runtime
from shared.settings import Settings
from shared.tooling.local_auth_store import AuthApiError

MAX_BODY_BYTES = 1 << 20  # GoTrue's limit
MIN_PASSWORD = 6  # GoTrue's default minimum length
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# The body fields the routes read, by the JSON type GoTrue's structs give them
# (null is as good as absent there, as in Go).
FIELD_TYPES: dict[str, tuple[type, str]] = {
    **dict.fromkeys(
        ("email", "password", "phone", "refresh_token", "type", "token", "token_hash"),
        (str, "a string"),
    ),
    "redirect_to": (str, "a string"),
    **dict.fromkeys(("data", "user_metadata", "app_metadata"), (dict, "an object")),
    **dict.fromkeys(("create_user", "email_confirm"), (bool, "a boolean")),
}


@dataclass
class Redirect:
    url: str


@dataclass(frozen=True)
class Policy:
    """The Auth server's configuration that requests see, and its clock (a test's own)."""

    refresh_token_reuse_seconds: float = 10.0  # GoTrue's default
    clock: Callable[[], float] = time.time


def _same(given: str, known: str) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters (a header may hold any).
    return hmac.compare_digest(given.encode(), known.encode())


def _bad_json(reason: str) -> AuthApiError:
    return AuthApiError(400, "bad_json", f"Could not parse request body as JSON: {reason}")


class Call:
    """One request: its headers, query, JSON body, and the checks of who sends it."""

    runtime: Runtime

    def __init__(
        self, settings: Settings, scope: Scope, receive: Receive, policy: Policy = Policy()
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.request = Request(scope, receive)
        self.headers = self.request.headers
        self.query = self.request.query_params

    def check_query(self) -> None:
        """Query values reach SQL (a link's token, its redirect): none PostgreSQL refuses."""
        for name, value in self.query.multi_items():
            if (reason := safejson.bad_text(name + value)) is not None:
                raise AuthApiError(400, "validation_failed", f"The query string {reason}")

    def require_apikey(self) -> None:
        key = self.headers.get("apikey") or self.query.get("apikey")
        if not key:
            raise AuthApiError(401, "no_api_key", "No API key found in request")
        known = (self.settings.local_key("anon"), self.settings.service_key)
        if not any(_same(key, k) for k in known):
            raise AuthApiError(401, "invalid_api_key", "Invalid API key")

    def bearer(self) -> str:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthApiError(401, "no_authorization", "This endpoint requires a Bearer token")
        return token.strip()

    def require_admin(self) -> None:
        token = self.bearer()
        if _same(token, self.settings.service_key):
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

    async def _raw(self) -> bytes:
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise _too_large()
        chunks, size = [], 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    async def body(self) -> dict[str, Any]:
        raw = await self._raw()
        if not raw.strip():
            raise _bad_json("unexpected end of JSON input")
        try:
            data = safejson.loads(raw)
        except BadRequest as exc:
            raise _bad_json(exc.message) from exc
        if data is None:
            return {}  # Go decodes null into an empty struct
        if not isinstance(data, dict):
            raise _bad_json(f"cannot decode a JSON {type(data).__name__} into an object")
        for name, value in data.items():
            expected, kind = FIELD_TYPES.get(name, (object, ""))
            if value is not None and not isinstance(value, expected):
                raise _bad_json(f"{name} must be {kind}")
        if (bad := safejson.unstorable(data)) is not None:
            field, reason = bad
            raise AuthApiError(400, "validation_failed", f"{field} {reason}")
        return data


def _too_large() -> AuthApiError:
    return AuthApiError(
        413, "request_entity_too_large", f"Request body too large (max {MAX_BODY_BYTES} bytes)"
    )


def text_of(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    return value.strip() if isinstance(value, str) else ""


def email_of(body: dict[str, Any], status: int = 400) -> str:
    email = text_of(body, "email").lower()
    if not email:
        raise AuthApiError(status, "validation_failed", "An email address is required")
    if not _EMAIL.match(email) or len(email) > 255:
        raise AuthApiError(
            status, "validation_failed", "Unable to validate email address: invalid format"
        )
    return email


def password_of(body: dict[str, Any]) -> str:
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


def metadata_of(body: dict[str, Any], name: str) -> dict[str, Any]:
    value: dict[str, Any] = body.get(name) or {}  # an object, as body() checked
    return value
