"""Kommo's API v4, read politely: at most 7 requests a second (a token bucket),
429 and 403 retried after the wait Kommo asks for, pages of 250 followed by their
HAL `_links.next`, and `If-Modified-Since` for re-runs.

Kommo answers lists as HAL (`{"_embedded": {"<entity>": [...]}, "_links":
{"next": …}}`) and a page past the end, or a list with nothing modified since,
as 204 No Content. Errors are problem+json (`{"title", "status", "detail"}`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, cast

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.channels.answers import ErrorShape, ProviderError
from shared.channels.http import ProviderClient
from shared.settings import Settings

PAGE_SIZE = 250
RATE_PER_SECOND = 7.0
SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

ERRORS = ErrorShape(provider="Kommo", message=("detail",), code=("status",), prefixed=True)


class KommoSettings(BaseSettings):
    """Where Kommo is: `{subdomain}` is the account's (a local fake can stand in); and
    the public integration admins connect through by OAuth 2.0 (unset: tokens only)."""

    model_config = SettingsConfigDict(env_prefix="CONNECTGAIN_KOMMO_", extra="ignore")

    api_url: str = Field(default="https://{subdomain}.kommo.com")
    oauth_url: str = "https://www.kommo.com/oauth"
    client_id: str | None = None
    client_secret: SecretStr | None = None
    redirect_uri: str | None = None  # the SPA's page Kommo sends the admin back to


def base_url(subdomain: str) -> str:
    return KommoSettings().api_url.format(subdomain=subdomain).rstrip("/")


def normalize_subdomain(value: str) -> str | None:
    """`acme`, `Acme`, `acme.kommo.com` or `https://acme.kommo.com/` → `acme`; None if not one."""
    text = value.strip().lower().removeprefix("https://").removeprefix("http://").rstrip("/")
    text = text.removesuffix(".kommo.com")
    return text if SUBDOMAIN.match(text) else None


@dataclass
class TokenBucket:
    """`rate` requests a second. `burst` tokens at most: at 1 (the default) requests are
    evenly spaced, so no second, however it is cut, holds more than `rate`. The clock
    and the sleep are injectable, so tests run it without waiting."""

    rate: float = RATE_PER_SECOND
    burst: float = 1.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _tokens: float | None = field(default=None, init=False)
    _at: float = field(default=0.0, init=False)

    async def take(self) -> None:
        now = self.clock()
        tokens = self.burst if self._tokens is None else self._tokens
        tokens = min(self.burst, tokens + (now - self._at) * self.rate)
        self._at = now
        if tokens < 1:
            wait = (1 - tokens) / self.rate
            await self.sleep(wait)
            tokens, self._at = 1.0, now + wait
        self._tokens = tokens - 1


@dataclass
class _Paced:
    """The HTTP client, each request (a retry too) after a token from the bucket."""

    http: httpx.AsyncClient
    bucket: TokenBucket

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        await self.bucket.take()
        return await self.http.request(method, url, **kwargs)


def _not_processed(response: httpx.Response) -> bool:
    # 429: over the limit; 403 after repeated overruns (Kommo blocks for a while)
    return response.status_code in (429, 403)


@dataclass
class KommoClient:
    http: httpx.AsyncClient
    settings: Settings
    subdomain: str
    token: str
    bucket: TokenBucket = field(default_factory=TokenBucket)

    async def get(
        self, path: str, *, params: dict[str, Any] | None = None, since: datetime | None = None
    ) -> dict[str, Any] | None:
        """One GET of /api/v4/<path>: its JSON object, or None for 204 No Content."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/hal+json"}
        if since is not None:
            headers["If-Modified-Since"] = format_datetime(since.astimezone(UTC), usegmt=True)
        paced = _Paced(self.http, self.bucket)
        provider = ProviderClient(cast(httpx.AsyncClient, paced), self.settings)
        response = await provider.request(
            "GET",
            f"{base_url(self.subdomain)}/api/v4/{path}",
            params=params,
            headers=headers,
            retry_after=ERRORS.retry_after,
            not_processed=_not_processed,
        )
        if response.status_code == 204:
            return None
        if not response.is_success:
            raise ERRORS.refusal(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ProviderError(
                f"Kommo answered {path} with something other than a JSON object",
                status=response.status_code,
                outcome="unavailable",
            )
        return body

    async def pages(
        self,
        path: str,
        key: str,
        *,
        start: int = 1,
        params: dict[str, Any] | None = None,
        since: datetime | None = None,
    ) -> AsyncIterator[tuple[int, list[dict[str, Any]], bool]]:
        """(page number, its items, whether another page follows), from `start` on."""
        page = start
        while True:
            body = await self.get(
                path, params={**(params or {}), "page": page, "limit": PAGE_SIZE}, since=since
            )
            if body is None:
                yield page, [], False
                return
            items = (body.get("_embedded") or {}).get(key) or []
            more = bool((body.get("_links") or {}).get("next")) and bool(items)
            yield page, [i for i in items if isinstance(i, dict)], more
            if not more:
                return
            page += 1
