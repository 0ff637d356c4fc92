"""What a running function holds on to, whatever serves it: settings, the pool, one
HTTP client. Domain code takes a Runtime; only the HTTP kit (shared/web.py) knows
how a request reaches one."""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass

import httpx

from shared.db import Database
from shared.settings import Settings


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default context, made once per process: loading the CA bundle costs
    tens of milliseconds of CPU, which httpx would otherwise spend on every Runtime."""
    return httpx.create_ssl_context()


@dataclass
class Runtime:
    """What a running function holds on to: settings, the pool, one HTTP client."""

    settings: Settings
    db: Database
    http: httpx.AsyncClient

    @classmethod
    async def open(cls, settings: Settings) -> Runtime:
        db = await Database.connect(settings)
        http = httpx.AsyncClient(timeout=settings.http_timeout_seconds, verify=_tls_context())
        return cls(settings=settings, db=db, http=http)

    async def close(self) -> None:
        await self.http.aclose()
        await self.db.close()
