"""The local Auth's public routes, served by the gateway beside the functions.

For now its signing keys: `GET /auth/v1/.well-known/jwks.json`, the JWKS of the
key local tokens are signed with (shared/auth/local.py), at the path Supabase
Auth publishes its own, so functions verify local tokens as they verify a
project's.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from shared.auth import local_jwks
from shared.errors import NotFound
from shared.guard import error_response
from shared.settings import Settings

JWKS_PATH = "/auth/v1/.well-known/jwks.json"


class LocalAuth:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def serves(self, path: str) -> bool:
        return self.settings.mode == "local" and path == JWKS_PATH

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("path") != JWKS_PATH or self.settings.mode != "local":
            await error_response(NotFound("No such Auth route"))(scope, receive, send)
            return
        if scope.get("method") not in ("GET", "HEAD"):
            body = {"error": {"code": "method_not_allowed", "message": "Method Not Allowed"}}
            refused = JSONResponse(body, status_code=405, headers={"Allow": "GET, HEAD"})
            await refused(scope, receive, send)
            return
        # Cached as Supabase's edge caches its own: ten minutes.
        headers = {"Cache-Control": "public, max-age=600"}
        await JSONResponse(local_jwks(self.settings), headers=headers)(scope, receive, send)
