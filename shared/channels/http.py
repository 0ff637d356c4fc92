"""Calls to providers: timeouts, bounded retries with backoff that honour Retry-After,
a record of every attempt (kept on the message it was for), and an optional pacer
that admits every attempt as it is about to be written (a campaign's rate cap).

A send must never reach the customer twice because we retried, so a call made
`at_most_once` is retried only when the provider surely did not act on it: the
connection was never made, or the provider answered that it did not process the
request (429, and the throttling answers a channel names in `not_processed`).
A timeout or 5xx after the request left, or a success we cannot read, is an
`unknown` outcome: a person decides. Other calls (reads, setup) are retried on
5xx and timeouts as well.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from shared.channels.answers import (
    ErrorShape,
    ProviderError,
    json_body,
    retry_after_seconds,
    throttled,
)
from shared.settings import Settings

# Module-level so tests can observe the waits without sleeping.
sleep = asyncio.sleep

# Transport failures before any byte of the request left: safe to repeat.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# httpcore's trace events (of HTTP/1.1 and HTTP/2): just before a request's first byte
# is written, and once its last byte was handed to the socket.
WRITING = frozenset({"http11.send_request_headers.started", "http2.send_request_headers.started"})
WRITTEN = frozenset({"http11.send_request_body.complete", "http2.send_request_body.complete"})


class Turn(Protocol):
    """One attempt's place in a pacer."""

    async def admit(self) -> None:
        """Wait for the attempt's turn (httpcore calls it just before it writes)."""

    def written(self) -> None:
        """The request was written."""


class Pacer(Protocol):
    """Paces a call's attempts (retries included). `attempt()` yields the attempt's turn:
    the provider client admits it from httpcore's trace as the request is about to be
    written, so nothing between admission and the socket (the HTTP client's own work, a
    busy event loop) delays a send admitted; and tells it when the request was written.
    An attempt its transport reports nothing of (a mock) is the pacer's to count."""

    def attempt(self) -> AbstractAsyncContextManager[Turn]: ...


@dataclass
class ProviderClient:
    http: httpx.AsyncClient
    settings: Settings
    attempts: list[dict[str, Any]] = field(default_factory=list)
    # time.monotonic() by which a call must be over: no retry starts that could end later.
    deadline: float | None = None
    pace: Pacer | None = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        retry_after: Callable[[httpx.Response], float | None] = retry_after_seconds,
        not_processed: Callable[[httpx.Response], bool] = throttled,
        at_most_once: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """The provider's answer for the channel to interpret (2xx, or a refusal), or a
        ProviderError saying whether the provider surely did not act (`unavailable`,
        after the retries) or may have (`unknown`, for an `at_most_once` call).

        `retry_after` reads how long the provider asks us to wait (the Retry-After
        header unless the provider says it elsewhere).
        """
        limit = max(1, self.settings.provider_attempts)
        for number in range(1, limit + 1):
            started = time.monotonic()
            wait: float | None = None
            try:
                async with self._paced(kwargs) as sending:
                    response = await self.http.request(method, url, **sending)
            except httpx.TransportError as exc:
                if at_most_once and not isinstance(exc, NEVER_SENT):
                    detail = f": {exc}" if str(exc) else ""
                    failure = ProviderError(
                        f"{type(exc).__name__} after the request was sent{detail}",
                        outcome="unknown",
                    )
                    self._record(number, started, None, failure.message, None)
                    raise failure from exc
                failure = ProviderError(
                    f"{type(exc).__name__} calling the provider", outcome="unavailable"
                )
            else:
                if not_processed(response):
                    wait = retry_after(response)
                    reason = "it did not take the request"
                elif response.status_code >= 500:
                    if at_most_once:
                        failure = ProviderError(
                            f"The provider answered {response.status_code}",
                            status=response.status_code,
                            outcome="unknown",
                            body=json_body(response),
                        )
                        self._record(number, started, failure.status, failure.message, None)
                        raise failure
                    reason = "a server error"
                else:
                    self._record(number, started, response.status_code, None, None)
                    return response
                failure = ProviderError(
                    f"The provider answered {response.status_code}: {reason}",
                    status=response.status_code,
                    outcome="unavailable",
                    retry_after=wait,
                    body=json_body(response),
                )
            if wait is None:
                wait = self.settings.provider_backoff_seconds * 2 ** (number - 1)
            if number == limit or not self._may_wait(wait):
                self._record(number, started, failure.status, failure.message, None)
                raise failure
            self._record(number, started, failure.status, failure.message, wait)
            await sleep(wait)
        raise AssertionError("unreachable")

    async def call(
        self, method: str, url: str, *, errors: ErrorShape, **kwargs: Any
    ) -> httpx.Response:
        """request() to a provider whose answers `errors` describes: its waits and
        throttling read from them; a 2xx answer, or its refusal as a ProviderError."""
        response = await self.request(
            method,
            url,
            retry_after=errors.retry_after,
            not_processed=errors.not_processed,
            **kwargs,
        )
        if not response.is_success:
            raise errors.refusal(response)
        return response

    @asynccontextmanager
    async def _paced(self, kwargs: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """One attempt's turn from the pacer, taken and told through httpcore's trace.
        (Waiting for it holds the connection: as a send it is about to make.)"""
        if self.pace is None:
            yield kwargs
            return
        async with self.pace.attempt() as turn:

            async def trace(event: str, info: dict[str, Any]) -> None:
                if event in WRITING:
                    await turn.admit()
                elif event in WRITTEN:
                    turn.written()

            yield kwargs | {"extensions": kwargs.get("extensions", {}) | {"trace": trace}}

    def _may_wait(self, wait: float) -> bool:
        if wait > self.settings.provider_max_wait_seconds:
            return False
        if self.deadline is None:
            return True
        # the next attempt may take a whole timeout; it must end before the deadline
        ends = time.monotonic() + wait + self.settings.http_timeout_seconds
        return ends <= self.deadline

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
