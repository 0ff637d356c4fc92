"""Standard Webhooks signing: secrets, the signed headers, the payload.

Signed with the `standardwebhooks` library: the signature is
`v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">`, and while
a rotated-out secret is still valid the header carries one signature per secret,
space-separated, so receivers verify with either.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from shared.events.base import Event

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def message_id(event: Event) -> str:
    """The same for every attempt (and replay) of an event, so receivers can dedupe."""
    return f"msg_{event.id}"


def body(event: Event) -> str:
    payload: dict[str, Any] = {
        "type": event.type,
        "timestamp": event.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": event.payload,
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def headers(*, msg_id: str, body: str, keys: list[str], at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for `body`, signed with each of `keys`."""
    signatures = " ".join(Webhook(key).sign(msg_id, at, body) for key in keys)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }
