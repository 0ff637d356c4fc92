"""Calls to providers: timeouts, bounded retries with backoff that honour Retry-After,
and a record of every attempt (kept on the message it was for)."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from shared.settings import Settings

# Module-level so tests can observe the waits without sleeping.
sleep = asyncio.sleep


class ProviderError(Exception):
    """The provider refused or failed; `retryable` says whether trying later may work."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after
        self.body = body

    def as_record(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "status": self.status,
            "code": self.code,
            "retryable": self.retryable,
            "provider": self.body,
        }


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass
class ProviderClient:
    http: httpx.AsyncClient
    settings: Settings
    attempts: list[dict[str, Any]] = field(default_factory=list)

    async def request(
        self,
        method: str,
        url: str,
        *,
        retry_after: Callable[[httpx.Response], float | None] = retry_after_seconds,
        **kwargs: Any,
    ) -> httpx.Response:
        """The provider's answer once it is not a 429/5xx/timeout, or a retryable ProviderError.

        Non-retryable answers (2xx, other 4xx) are returned for the channel to interpret.
        `retry_after` reads how long the provider asks us to wait (the Retry-After header
        unless the provider says it elsewhere).
        """
        limit = max(1, self.settings.provider_attempts)
        for number in range(1, limit + 1):
            started = time.monotonic()
            wait: float | None = None
            try:
                response = await self.http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                failure = ProviderError(
                    f"{type(exc).__name__} calling the provider", retryable=True
                )
            else:
                if response.status_code != 429 and response.status_code < 500:
                    self._record(number, started, response.status_code, None, None)
                    return response
                wait = retry_after(response)
                failure = ProviderError(
                    f"The provider answered {response.status_code}",
                    status=response.status_code,
                    retryable=True,
                    retry_after=wait,
                    body=_body(response),
                )
            if wait is None:
                wait = self.settings.provider_backoff_seconds * 2 ** (number - 1)
            if number == limit or wait > self.settings.provider_max_wait_seconds:
                self._record(number, started, failure.status, failure.message, None)
                raise failure
            self._record(number, started, failure.status, failure.message, wait)
            await sleep(wait)
        raise AssertionError("unreachable")

    def _record(
        self, number: int, started: float, status: int | None, error: str | None, wait: float | None
    ) -> None:
        self.attempts.append(
            {
                "attempt": number,
                "at": datetime.now(UTC).isoformat(),
                "ms": round((time.monotonic() - started) * 1000, 1),
                "status": status,
                "error": error,
                "retry_in": wait,
            }
        )


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]
