"""The provider client's one rule, for every channel: a call made at most once is
repeated only when the provider surely did not act on it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx

from shared.channels import http as provider_http
from shared.channels.answers import ErrorShape, ProviderError, retry_after_seconds
from shared.channels.http import ProviderClient
from shared.channels.meta.graph import graph_throttled
from shared.settings import Settings
from tests.fixtures import load

URL = "https://provider.example/send"


@pytest.fixture
def settings() -> Settings:
    """Defaults only: these tests need no database."""
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(provider_http, "sleep", fake_sleep)
    return recorded


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def call(
    http: httpx.AsyncClient,
    settings: Settings,
    *,
    at_most_once: bool,
    deadline: float | None = None,
) -> httpx.Response:
    client = ProviderClient(http, settings, deadline=deadline)
    return await client.request("POST", URL, json={"text": "hi"}, at_most_once=at_most_once)


AMBIGUOUS: list[httpx.Response | Exception] = [
    httpx.Response(500),
    httpx.Response(502, text="Bad Gateway"),
    httpx.Response(503, json={"message": "Service Unavailable"}),
    httpx.Response(504),
    httpx.ReadTimeout("read"),
    httpx.WriteTimeout("write"),
    httpx.ReadError("reset by peer"),
    httpx.RemoteProtocolError("Server disconnected without sending a response."),
]
NEVER_PROCESSED: list[httpx.Response | Exception] = [
    httpx.ConnectError("[Errno 111] Connection refused"),
    httpx.ConnectTimeout("connect"),
    httpx.PoolTimeout("pool"),
    httpx.Response(429, json={"message": "Too many requests"}),
]


@respx.mock
@pytest.mark.parametrize("failure", AMBIGUOUS, ids=repr)
async def test_an_ambiguous_failure_of_a_send_is_unknown_at_once(
    http: httpx.AsyncClient,
    settings: Settings,
    waits: list[float],
    failure: httpx.Response | Exception,
):
    route = respx.post(URL).mock(side_effect=[failure, httpx.Response(200)])
    with pytest.raises(ProviderError) as raised:
        await call(http, settings, at_most_once=True)
    assert (raised.value.outcome, raised.value.retryable) == ("unknown", False)
    assert (route.call_count, waits) == (1, [])


@respx.mock
@pytest.mark.parametrize("failure", AMBIGUOUS + NEVER_PROCESSED, ids=repr)
async def test_other_calls_are_retried_through_any_failure(
    http: httpx.AsyncClient,
    settings: Settings,
    waits: list[float],
    failure: httpx.Response | Exception,
):
    route = respx.post(URL).mock(side_effect=[failure, httpx.Response(200)])
    assert (await call(http, settings, at_most_once=False)).status_code == 200
    assert route.call_count == 2


@respx.mock
@pytest.mark.parametrize("failure", NEVER_PROCESSED, ids=repr)
async def test_a_send_the_provider_never_took_is_retried_then_unavailable(
    http: httpx.AsyncClient,
    settings: Settings,
    waits: list[float],
    failure: httpx.Response | Exception,
):
    route = respx.post(URL).mock(side_effect=failure)
    with pytest.raises(ProviderError) as raised:
        await call(http, settings, at_most_once=True)
    assert (raised.value.outcome, raised.value.retryable) == ("unavailable", True)
    assert route.call_count == settings.provider_attempts
    assert waits == [0.5, 1.0]


@respx.mock
@pytest.mark.parametrize("status", [200, 201, 400, 401, 404, 409])
async def test_answers_the_channel_reads_are_returned_after_one_call(
    http: httpx.AsyncClient, settings: Settings, status: int
):
    route = respx.post(URL).respond(status, json={})
    assert (await call(http, settings, at_most_once=True)).status_code == status
    assert route.call_count == 1


@respx.mock
async def test_no_retry_starts_that_would_end_after_the_deadline(
    http: httpx.AsyncClient, settings: Settings, waits: list[float]
):
    route = respx.post(URL).respond(429, headers={"Retry-After": "2"})
    soon = time.monotonic() + settings.http_timeout_seconds + 1
    with pytest.raises(ProviderError) as raised:
        await call(http, settings, at_most_once=True, deadline=soon)
    assert (raised.value.outcome, raised.value.retry_after) == ("unavailable", 2.0)
    assert (route.call_count, waits) == (1, [])


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 2.0), (" 1.5 ", 1.5), ("0", 0.0), ("-3", None), ("nan", None), ("soon", None)],
)
def test_retry_after_in_seconds(header: str, seconds: float | None):
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": header})) == seconds


def test_retry_after_as_an_http_date():
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    wait = retry_after_seconds(httpx.Response(503, headers={"Retry-After": when}))
    assert wait is not None and 25 <= wait <= 30


@pytest.mark.parametrize(
    ("status", "body", "throttled"),
    [
        (400, load("whatsapp", "error_rate_limited"), True),  # 130429 throughput
        (400, load("whatsapp", "error_pair_rate_limited"), True),  # 131056 pair limit
        (400, load("messenger", "error_rate_limited"), True),  # 613
        (429, {}, True),
        (400, load("whatsapp", "error_outside_window"), False),  # 131047: a refusal
        (500, load("whatsapp", "error_something_went_wrong"), False),  # 131000: may have sent
        (400, ["not", "an", "object"], False),
    ],
)
def test_meta_throttling_answers_are_known_by_their_code(
    status: int, body: object, throttled: bool
):
    assert graph_throttled(httpx.Response(status, json=body)) is throttled


SHAPE = ErrorShape(
    provider="Acme",
    message=("error", "text"),
    code=("error", "code"),
    details=("error", "more"),
    wait=("error", "wait"),
    throttling_codes=frozenset({77}),
)


def test_a_refusal_is_read_where_the_provider_documents_it():
    body = {"error": {"text": "bad recipient", "code": 12, "more": "no such user"}}
    error = SHAPE.refusal(httpx.Response(400, json=body))
    assert (error.message, error.status, error.code, error.outcome, error.body) == (
        "bad recipient (no such user)", 400, 12, "refused", body
    )  # fmt: skip
    assert SHAPE.refusal(httpx.Response(403, text="Forbidden")).message == "Forbidden"
    assert SHAPE.refusal(httpx.Response(404, json={"error": {"code": True}})).code is None
    assert SHAPE.refusal(httpx.Response(404, json={})).message == "Acme answered 404"
    prefixed = ErrorShape(provider="Acme", message=("m",), prefixed=True)
    assert prefixed.refusal(httpx.Response(400, json={"m": "no"})).message == "Acme: no"


def test_a_wait_in_the_body_comes_before_retry_after_and_codes_say_throttled():
    in_body = httpx.Response(429, json={"error": {"wait": 7}}, headers={"Retry-After": "3"})
    assert SHAPE.retry_after(in_body) == 7
    assert SHAPE.retry_after(httpx.Response(429, json={}, headers={"Retry-After": "3"})) == 3
    assert SHAPE.not_processed(httpx.Response(400, json={"error": {"code": "77"}}))
    assert not SHAPE.not_processed(httpx.Response(400, json={"error": {"code": 78}}))
    assert not SHAPE.not_processed(httpx.Response(500, json={"error": {"code": 77}}))
