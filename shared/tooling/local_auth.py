"""The local Auth: the part of GoTrue's API that supabase-js and the functions call.

Served by the gateway at `/auth/v1` in local mode only, over the `auth` schema of
the local stand-in (supabase/local/10_auth.sql; shared/tooling/local_auth_store.py):

    GET  /.well-known/jwks.json                     the signing key (no apikey, as Supabase)
    POST /signup {email, password, data}            a confirmed user and a session
    POST /token?grant_type=password|refresh_token   a session
    GET|PUT /user {password, data}                  the Bearer token's user; sets them
    POST /logout?scope=global|local|others          ends sessions (their refresh tokens)
    POST /otp {email, create_user, data}            a magic link
    GET|POST /verify                                redeems an invite / magic link
    POST /admin/users, /invite, /admin/generate_link   service key only

Access tokens are ES256, 3600 s, with Supabase's claims (shared/auth/local.py).
Refresh tokens rotate, with GoTrue's reuse rules and the reuse interval of
supabase/config.toml (`refresh_token_reuse_interval`; local_auth_store.refresh).
Mail is not sent: its link goes to the log and to `auth.local_outbox`. Every
request but the key's and /verify needs the `apikey` header (the anon or service
key), as Supabase's gateway requires. Bodies are read as GoTrue reads them
(shared/tooling/local_auth_call.py). Errors have GoTrue's shape and statuses, and
pages on other origins may call it all (AuthCors).
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable, Sequence
from typing import Any

from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.auth import local_jwks
from shared.errors import NotFound
from shared.guard import error_response
from shared.runtime import Runtime
from shared.settings import Settings
from shared.tooling import local_auth_api as api
from shared.tooling import local_auth_links as links
from shared.tooling.local_auth_call import Call, Policy, Redirect
from shared.tooling.local_auth_store import AuthApiError
from shared.web import Cors

PREFIX = "/auth/v1"
JWKS_PATH = f"{PREFIX}/.well-known/jwks.json"
API_VERSION = "2024-01-01"
API_VERSION_HEADER = "X-Supabase-Api-Version"
log = logging.getLogger("connectgain.local_auth")

Handler = Callable[[Call], Any]
ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/signup"): api.signup,
    ("POST", "/token"): api.token,
    ("GET", "/user"): api.get_user,
    ("PUT", "/user"): api.update_user,
    ("POST", "/logout"): api.logout,
    ("POST", "/otp"): links.otp,
    ("POST", "/verify"): links.verify,
    ("GET", "/verify"): links.verify,
    ("POST", "/invite"): links.invite,
    ("POST", "/admin/users"): links.admin_create_user,
    ("POST", "/admin/generate_link"): links.generate_link,
}
OPEN = frozenset({"/verify"})  # clicked from an e-mail: no apikey, as on Supabase


def policy_of(settings: Settings) -> Policy:
    """The `[auth]` settings of supabase/config.toml that the local Auth honours, as
    `supabase start` hands them to GoTrue."""
    path = settings.project_dir / "supabase" / "config.toml"
    config = tomllib.loads(path.read_text()).get("auth", {}) if path.exists() else {}
    return Policy(refresh_token_reuse_seconds=float(config.get("refresh_token_reuse_interval", 10)))


class AuthCors(Cors):
    """The functions' CORS, also exposing X-Supabase-Api-Version, as GoTrue does: a
    page's supabase-js reads the error shape by it, and without it loses the codes."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        super().__init__(app, origins)
        exposed = self.simple_headers.get("Access-Control-Expose-Headers", "")
        self.simple_headers["Access-Control-Expose-Headers"] = ", ".join(
            filter(None, (exposed, API_VERSION_HEADER))
        )


class LocalAuth:
    def __init__(self, settings: Settings, runtime: Callable[[], Runtime | None]) -> None:
        self.settings = settings
        self.runtime = runtime
        self.policy = policy_of(settings)  # tests may replace it (another clock)
        self.cors = AuthCors(self, settings.cors_origins)  # what the gateway serves

    def serves(self, path: str) -> bool:
        return self.settings.mode == "local" and (path == PREFIX or path.startswith(PREFIX + "/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if self.settings.mode != "local" or not self.serves(path):
            await error_response(NotFound("No such Auth route"))(scope, receive, send)
            return
        if path == JWKS_PATH:
            await self._jwks(scope, receive, send)
            return
        response = await self._answer(scope, receive, path.removeprefix(PREFIX))
        await response(scope, receive, send)

    async def _jwks(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") not in ("GET", "HEAD"):
            body = {"error": {"code": "method_not_allowed", "message": "Method Not Allowed"}}
            refused = JSONResponse(body, status_code=405, headers={"Allow": "GET, HEAD"})
            await refused(scope, receive, send)
            return
        # Cached as Supabase's edge caches its own: ten minutes.
        headers = {"Cache-Control": "public, max-age=600"}
        await JSONResponse(local_jwks(self.settings), headers=headers)(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, route: str) -> Response:
        call = Call(self.settings, scope, receive, self.policy)
        versioned = call.headers.get("x-supabase-api-version", "") >= API_VERSION
        try:
            handler = ROUTES.get((scope.get("method", ""), route.rstrip("/") or "/"))
            if handler is None:
                raise AuthApiError(404, "not_found", "Not found")
            if route not in OPEN:
                call.require_apikey()
            call.check_query()
            runtime = self.runtime()
            if runtime is None:
                raise AuthApiError(503, "unexpected_failure", "The local Auth is starting")
            call.runtime = runtime
            result = await handler(call)
        except AuthApiError as exc:
            return _error(exc, versioned=versioned)
        except Exception:  # a fault of ours still answers in GoTrue's shape, and is logged
            log.exception("local Auth failed on %s %s", scope.get("method"), route)
            fault = AuthApiError(500, "unexpected_failure", "Unexpected failure")
            return _error(fault, versioned=versioned)
        if isinstance(result, Response):
            return result
        if isinstance(result, Redirect):
            return RedirectResponse(result.url, status_code=303)
        if result is None:
            return Response(status_code=204)
        return JSONResponse(result, headers={API_VERSION_HEADER: API_VERSION})


def _error(exc: AuthApiError, *, versioned: bool) -> JSONResponse:
    """GoTrue's two error shapes: {code, message} for clients that send the 2024-01-01
    API version (supabase-js, supabase_auth), {code, error_code, msg} for the rest."""
    if versioned:
        body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    else:
        body = {"code": exc.status, "error_code": exc.code, "msg": exc.message}
    body.update(exc.extra)
    return JSONResponse(body, status_code=exc.status, headers={API_VERSION_HEADER: API_VERSION})
