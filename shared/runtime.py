"""What a running function holds on to, whatever serves it: settings, the pool, one
HTTP client. Domain code takes a Runtime; only the HTTP kit (shared/web.py) knows
how a request reaches one."""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass

import httpx

from shared.auth.jwks import JwksCache
from shared.db import Database
from shared.settings import Settings


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default context, made once per process: loading the CA bundle costs
    tens of milliseconds of CPU, which httpx would otherwise spend on every Runtime."""
    return httpx.create_ssl_context()


@dataclass
class Runtime:
    """What a running function holds on to: settings, the pool, one HTTP client, and
    the signing keys of Supabase Auth (cached across requests)."""

    settings: Settings
    db: Database
    http: httpx.AsyncClient
    jwks: JwksCache

    @classmethod
    async def open(
        cls, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> Runtime:
        """`transport` replaces the network for the HTTP client (the tests route the
        local Auth's JWKS to the in-process gateway with it)."""
        db = await Database.connect(settings)
        http = httpx.AsyncClient(
            timeout=settings.http_timeout_seconds, verify=tls_context(), transport=transport
        )
        jwks = JwksCache(
            url=settings.jwks_endpoint,
            http=http,
            ttl_seconds=settings.jwks_ttl_seconds,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
            timeout_seconds=settings.jwks_timeout_seconds,
        )
        return cls(settings=settings, db=db, http=http, jwks=jwks)

    async def close(self) -> None:
        await self.http.aclose()
        await self.db.close()
