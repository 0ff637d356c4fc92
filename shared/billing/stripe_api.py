"""Stripe's API through the `stripe` library: customers, Checkout and Customer Portal
sessions, and a subscription's current state.

The client speaks httpx (stripe.HTTPXClient, async), so a test's respx routes stand
in for Stripe at the HTTP layer. Stripe's failures become our errors: unreachable or
throttling is a 503 `stripe_unavailable`, a refusal a 502 `stripe_rejected`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable
from typing import Any, TypeVar
from uuid import UUID

import stripe

from shared.errors import ServiceUnavailable, UpstreamError
from shared.settings import LOCAL_STRIPE_SECRET_KEY, Settings

T = TypeVar("T")
TIMEOUT_SECONDS = 10.0


class _HttpxClient(stripe.HTTPXClient):
    """The library's httpx client, handing its form body to httpx as `content`: httpx
    deprecates a raw string passed as `data`, and warns on every call."""

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Any, post_data: Any
    ) -> list[Any]:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        kwargs["content"] = kwargs.pop("data", None) or None
        return [args, kwargs]


@functools.cache
def _client(secret_key: str, api_base: str, retries: int) -> stripe.StripeClient:
    return stripe.StripeClient(
        secret_key,
        base_addresses={"api": api_base},
        http_client=_HttpxClient(timeout=TIMEOUT_SECONDS),
        max_network_retries=retries,  # the library sends idempotency keys on its retries
    )


def client(settings: Settings) -> stripe.StripeClient:
    key = settings.stripe_secret_key
    # The local stand-in key can only talk to a local fake, never to Stripe itself.
    if key is None or (
        key.get_secret_value() == LOCAL_STRIPE_SECRET_KEY
        and settings.stripe_api_base == stripe.DEFAULT_API_BASE
    ):
        raise ServiceUnavailable(
            "Billing is not configured: set CONNECTGAIN_STRIPE_SECRET_KEY",
            code="billing_not_configured",
        )
    return _client(
        key.get_secret_value(), settings.stripe_api_base, max(settings.provider_attempts - 1, 0)
    )


async def call(request: Awaitable[T]) -> T:
    try:
        return await request
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise ServiceUnavailable(
            "Stripe is unreachable or busy; try again", code="stripe_unavailable"
        ) from exc
    except stripe.StripeError as exc:
        raise UpstreamError(
            f"Stripe refused: {exc.user_message or 'no message'}",
            code="stripe_rejected",
            details={"status": exc.http_status, "code": exc.code},
        ) from exc


async def create_customer(*, settings: Settings, organization_id: UUID, name: str) -> str:
    customer = await call(
        client(settings).v1.customers.create_async(
            {"name": name, "metadata": {"organization_id": str(organization_id)}},
            # one customer per organization, even when two owners click at once
            {"idempotency_key": f"connectgain-customer-{organization_id}"},
        )
    )
    return customer.id


async def create_checkout_session(
    *, settings: Settings, organization_id: UUID, customer: str, price: str
) -> dict[str, Any]:
    back = settings.billing_return_url
    session = await call(
        client(settings).v1.checkout.sessions.create_async(
            {
                "mode": "subscription",
                "customer": customer,
                "client_reference_id": str(organization_id),
                "line_items": [{"price": price, "quantity": 1}],
                "subscription_data": {"metadata": {"organization_id": str(organization_id)}},
                "success_url": f"{back}?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
                "cancel_url": f"{back}?checkout=cancel",
            }
        )
    )
    return {"id": session.id, "url": session.url, "expires_at": session.expires_at}


async def create_portal_session(*, settings: Settings, customer: str) -> dict[str, Any]:
    session = await call(
        client(settings).v1.billing_portal.sessions.create_async(
            {"customer": customer, "return_url": settings.billing_return_url}
        )
    )
    return {"id": session.id, "url": session.url}


async def retrieve_subscription(*, settings: Settings, subscription_id: str) -> dict[str, Any]:
    subscription = await call(client(settings).v1.subscriptions.retrieve_async(subscription_id))
    return subscription.to_dict()
