"""Stripe for the billing tests: its documented payloads (tests/fixtures/stripe), signed
by the stripe library's own helper, and a fake of its API at the HTTP layer (respx)
that answers with Stripe's documented objects."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from uuid import uuid4

import httpx
import pytest_asyncio
import respx
import stripe

from shared.db import Connection
from shared.runtime import Runtime
from shared.settings import Settings
from shared.tooling.gateway import Gateway
from tests.support import LocalAuthNetwork, settings_for

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "stripe"
API = "https://stripe.fake.test"
CUSTOMER = "cus_NffrFeUfNV2Hib"
SUBSCRIPTION = "sub_1MowQVLkdIwHu7ixeRlqHVzs"
PRICE = "price_1MowQULkdIwHu7ixraBm864M"


def billing_settings(database_url: str) -> Settings:
    """The tests' settings, with Stripe at the fake's address and no retry pauses."""
    return settings_for(database_url).model_copy(
        update={"stripe_api_base": API, "provider_attempts": 1}
    )


def fixture(name: str, **ids: str) -> dict[str, Any]:
    """A documented payload, with its customer, subscription and event ids replaced
    (`customer=`, `subscription=`, `event=`) so tests sharing a database stay apart."""
    text = (FIXTURES / f"{name}.json").read_text()
    for old, new in ((CUSTOMER, ids.get("customer")), (SUBSCRIPTION, ids.get("subscription"))):
        if new:
            text = text.replace(old, new)
    data: dict[str, Any] = json.loads(text)
    if "event" in ids:
        data["id"] = ids["event"]
    return data


def signed(
    event: Any, secret: str, *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(
        payload, secret, timestamp=timestamp or int(time.time())
    )
    return payload.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}


def new_ids() -> dict[str, str]:
    tail = uuid4().hex[:14]
    return {"customer": f"cus_{tail}", "subscription": f"sub_{tail}"}


class FakeStripe:
    """Stripe's API: customers, Checkout and portal sessions, and subscriptions whose
    current state a test sets (`subscriptions[id]`)."""

    def __init__(self, router: respx.MockRouter) -> None:
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.down = False  # True: every call fails to connect
        self.posted: dict[str, list[dict[str, list[str]]]] = {}
        self.customer = json.loads((FIXTURES / "api_customer.json").read_text())
        router.get(url__regex=rf"{API}/v1/subscriptions/(?P<sid>[^/?]+)").mock(
            side_effect=self._subscription
        )
        for path, name in (
            ("/v1/customers", "api_customer"),
            ("/v1/checkout/sessions", "api_checkout_session"),
            ("/v1/billing_portal/sessions", "api_billing_portal_session"),
        ):
            router.post(f"{API}{path}").mock(side_effect=self._answer(path, name))
        self.router = router

    def set_state(self, ids: dict[str, str], status: str, **changes: Any) -> dict[str, Any]:
        state = fixture("api_subscription", **ids)
        state.update(status=status, **changes)
        self.subscriptions[ids["subscription"]] = state
        return state

    def _subscription(self, request: httpx.Request, sid: str) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("Stripe is down", request=request)
        if sid not in self.subscriptions:
            error = {"message": f"No such subscription: '{sid}'", "type": "invalid_request_error"}
            return httpx.Response(404, json={"error": {**error, "code": "resource_missing"}})
        return httpx.Response(200, json=self.subscriptions[sid])

    def _answer(self, path: str, name: str) -> Any:
        def answer(request: httpx.Request) -> httpx.Response:
            if self.down:
                raise httpx.ConnectError("Stripe is down", request=request)
            form = parse_qs(request.content.decode())
            self.posted.setdefault(path, []).append(form)
            body = json.loads((FIXTURES / f"{name}.json").read_text())
            if "customer" in form and "customer" in body:
                body["customer"] = form["customer"][0]
            if path == "/v1/customers":
                body["id"] = f"cus_{uuid4().hex[:14]}"
            return httpx.Response(200, json=body)

        return answer


@pytest_asyncio.fixture(scope="module", loop_scope="module", name="runtime")
async def billing_runtime(module_database_url: str) -> AsyncIterator[Runtime]:
    settings = billing_settings(module_database_url)
    opened = await Runtime.open(settings, transport=LocalAuthNetwork(settings))
    try:
        yield opened
    finally:
        await opened.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module", name="db")
async def priced_db(runtime: Runtime) -> AsyncIterator[Connection]:
    """The owner's connection, with the pro plan sold at the fixtures' Stripe Price."""
    async with runtime.db.pool.acquire() as conn:
        await conn.execute(
            "update public.plans set stripe_price_ids = $1 where code = 'pro'", [PRICE]
        )
        yield conn


@pytest_asyncio.fixture(scope="module", loop_scope="module", name="client")
async def billing_client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=Gateway(runtime.settings, runtime=runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:54321") as c:
        yield c


@pytest_asyncio.fixture(loop_scope="module", name="stripe_api")
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield FakeStripe(router)
