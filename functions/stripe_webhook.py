"""POST /functions/v1/stripe-webhook — Stripe's events about subscriptions.

The `Stripe-Signature` header is verified with the stripe library against the
raw body (timestamp tolerance CONNECTGAIN_STRIPE_WEBHOOK_TOLERANCE_SECONDS); a
forged, stale or unsigned delivery is a 400 and nothing is stored. Each event is
applied once (by its id); subscription events are applied by reading the
subscription's current state from Stripe, so their order does not matter
(shared/billing/sync.py). Events we do not use are acknowledged with 200.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import BaseModel

from shared.billing import sync
from shared.web import SignedRouter, function_app, get_runtime

router = SignedRouter()


class Receipt(BaseModel):
    received: bool
    id: str
    type: str
    duplicate: bool
    outcome: str


_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "description": "A Stripe event, as Stripe signs it"}
            }
        },
    },
    "parameters": [
        {"name": "Stripe-Signature", "in": "header", "required": True, "schema": {"type": "string"}}
    ],
}


@router.post(
    "/",
    summary="A signed Stripe event",
    response_model=Receipt,
    openapi_extra=_BODY,
)
async def receive(request: Request) -> dict[str, Any]:
    runtime = await get_runtime(request)
    event = sync.verify(
        settings=runtime.settings,
        payload=await request.body(),
        signature=request.headers.get("stripe-signature"),
    )
    outcome = await sync.handle(db=runtime.db, settings=runtime.settings, event=event)
    return {
        "received": True,
        "id": outcome.event_id,
        "type": outcome.type,
        "duplicate": outcome.duplicate,
        "outcome": outcome.outcome,
    }


app = function_app(router, name="stripe-webhook", error_statuses=(400, 502, 503))
