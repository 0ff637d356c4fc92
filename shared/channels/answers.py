"""What a provider's answer says: the ProviderError a call ends in (refused, unavailable
or unknown), and the readers of answers every channel shares — waits (Retry-After or
the body), throttling, JSON bodies, the id of what was accepted, and each provider's
declared error shape (ErrorShape). Kept apart from the client (shared/channels/http.py)
so channels read answers without the retry machinery.
"""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

# refused: the provider answered no (a 4xx of its own); nothing was sent.
# unavailable: the provider surely did not act (no connection, throttled); try later.
# unknown: the request may have been acted on; never repeated by itself.
Outcome = Literal["refused", "unavailable", "unknown"]


class ProviderError(Exception):
    """The provider refused, was unavailable, or left the outcome unknown."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | int | None = None,
        outcome: Outcome = "refused",
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.outcome: Outcome = outcome
        self.retry_after = retry_after
        self.body = body

    @property
    def retryable(self) -> bool:
        """Whether repeating the request later is safe and may work."""
        return self.outcome == "unavailable"

    def as_record(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "status": self.status,
            "code": self.code,
            "outcome": self.outcome,
            "retryable": self.retryable,
            "retry_after": self.retry_after,
            "provider": self.body,
        }


def seconds(value: Any) -> float | None:
    """A wait the provider gave as a number (or numeric text); None if it is not one."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    if (number := seconds(value.strip())) is not None:
        return number
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def throttled(response: httpx.Response) -> bool:
    """429 Too Many Requests: the request was not processed (every provider here)."""
    return response.status_code == 429


def json_body(response: httpx.Response) -> Any:
    """The answer's JSON, or its text (cut short) when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def unexpected(response: httpx.Response, expected: str) -> ProviderError:
    """A success we cannot read: the provider may have sent the message."""
    return ProviderError(
        f"The provider answered {response.status_code} without {expected}",
        status=response.status_code,
        outcome="unknown",
        body=json_body(response),
    )


Path = tuple[str | int, ...]


def dig(body: Any, *path: str | int) -> Any:
    """body[path[0]][path[1]]…, or None where the shape differs."""
    for step in path:
        if isinstance(step, int) and isinstance(body, list) and -len(body) <= step < len(body):
            body = body[step]
        elif isinstance(step, str) and isinstance(body, dict):
            body = body.get(step)
        else:
            return None
    return body


def accepted_id(response: httpx.Response, *path: str | int) -> tuple[str, dict[str, Any]]:
    """The provider's id for what it accepted, at `path` in a 2xx JSON object answer."""
    body = json_body(response)
    value = dig(body, *path)
    if not isinstance(body, dict) or isinstance(value, bool) or not isinstance(value, str | int):
        raise unexpected(response, "the id it documents")
    if not str(value):
        raise unexpected(response, "the id it documents")
    return str(value), body


@dataclass(frozen=True)
class ErrorShape:
    """Where a provider's error answers say what went wrong and how long to wait: each
    channel declares its own, and these methods read every provider's the same way."""

    provider: str  # "Twilio", as messages name it
    message: Path  # the error's text in a JSON body (a plain-text body is the text)
    code: Path | None = None
    details: Path | None = None  # more words, added in parentheses
    wait: Path | None = None  # seconds to wait, in the body (else the Retry-After header)
    throttling_codes: frozenset[int] = frozenset()  # 4xx codes meaning "not processed"
    prefixed: bool = False  # "Mailgun: <text>"

    def _code(self, body: Any) -> str | int | None:
        code = dig(body, *self.code) if self.code else None
        return code if isinstance(code, str | int) and not isinstance(code, bool) else None

    def refusal(self, response: httpx.Response) -> ProviderError:
        """The provider's own refusal (a 4xx): nothing was sent."""
        body = json_body(response)
        text = dig(body, *self.message) if isinstance(body, dict) else body
        if not text:
            text = f"{self.provider} answered {response.status_code}"
        elif self.prefixed:
            text = f"{self.provider}: {text}"
        details = dig(body, *self.details) if self.details else None
        return ProviderError(
            f"{text} ({details})" if details else str(text),
            status=response.status_code,
            code=self._code(body),
            body=body,
        )

    def retry_after(self, response: httpx.Response) -> float | None:
        wait = seconds(dig(json_body(response), *self.wait)) if self.wait else None
        return wait if wait is not None else retry_after_seconds(response)

    def not_processed(self, response: httpx.Response) -> bool:
        """429, or a 4xx whose error code is one of the provider's throttling codes."""
        if throttled(response):
            return True
        if not self.throttling_codes or not 400 <= response.status_code < 500:
            return False
        code = self._code(json_body(response))
        if isinstance(code, str) and code.isdigit():
            code = int(code)
        return code in self.throttling_codes
