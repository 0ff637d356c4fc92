"""A verified delivery as rows the database can always store.

Once a delivery is verified, it is the provider's word and is never lost: what
cannot be read or stored as it is gets kept raw, losslessly, in
`inbound_events.raw` (bytea), and its event is failed with the reason while the
rest of the delivery is processed.

- A body the channel cannot split into events (not JSON, not the provider's
  shape) is kept whole as one `unreadable` event: `raw` holds the body's exact
  bytes, keyed by their digest, so a redelivery is a duplicate.
- An event PostgreSQL cannot hold (a NUL character, a lone surrogate: jsonb and
  text refuse both) is kept as its payload's JSON text, where NUL is the escape
  `\\u0000` and a surrogate `\\udXXX`, so `json.loads(raw)` gives back exactly the
  event the provider sent. Its `payload` names the field and why.

Neither is retried (next_attempt_at = infinity): what the provider sent will not
change, and a person decides what to do with it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

from shared.channels.base import RawEvent, WebhookRequest
from shared.inbox.seam import StoredEvent
from shared.safejson import bad_text, clean_json, printable, unstorable

ParseResult = dict[str, Any]  # {"parsed", "parse_error"}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:40]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def error_text(exc: BaseException) -> str:
    """An exception as an event's last_error: storable whatever it quotes."""
    return str(printable(f"{type(exc).__name__}: {exc}"))[:2000]


def unreadable(request: WebhookRequest, exc: BaseException) -> StoredEvent:
    """A verified body the channel could not split into events, kept whole."""
    reason = error_text(exc)
    return StoredEvent(
        provider_event_id=f"unreadable:{_digest(request.body)}",
        event_type="unreadable",
        payload={
            "error": reason,
            "content_type": printable(request.headers.get("content-type")),
            "size": len(request.body),
        },
        parsed=None,
        parse_error=f"The delivery could not be read: {reason}",
        raw=_b64(request.body),
    )


def clean(request: WebhookRequest) -> bool:
    """Whether nothing in a JSON delivery can be unstorable, so its events need no
    walk (the common case, on the hot path); forms and odd bodies are walked."""
    return request.body.lstrip()[:1] in (b"{", b"[") and clean_json(request.body)


def storable(
    event: RawEvent, parse: Callable[[RawEvent], ParseResult], *, clean: bool = False
) -> StoredEvent:
    """One event of a verified delivery, parsed, in a form PostgreSQL can store;
    `clean`: its delivery holds nothing unstorable, and so neither does its parse."""
    problem = None
    if not clean:
        problem = unstorable(
            {"id": event.provider_event_id, "type": event.event_type, "payload": event.payload}
        )
    if problem is None:
        result = parse(event)
        parsed, parse_error = result["parsed"], result["parse_error"]
        if not clean and (bad := unstorable(parsed)) is not None:  # made by our parser
            parsed, parse_error = None, f"The parsed event cannot be stored: {bad[0]} {bad[1]}"
        return StoredEvent(
            provider_event_id=event.provider_event_id,
            event_type=event.event_type,
            payload=event.payload,
            parsed=parsed,
            parse_error=parse_error,
        )
    field, why = problem
    raw = json.dumps(event.model_dump(), ensure_ascii=True).encode("ascii")
    reason = f"{printable(field)} {why}, which PostgreSQL cannot store"
    return StoredEvent(
        provider_event_id=(
            event.provider_event_id
            if bad_text(event.provider_event_id) is None
            else f"unstorable:{_digest(raw)}"
        ),
        event_type=event.event_type if bad_text(event.event_type) is None else "unstorable",
        payload={"error": reason, "field": printable(field)},
        parsed=None,
        parse_error=f"The event is kept raw: {reason}",
        raw=_b64(raw),
    )


def storable_nonce(nonce: str | None) -> str | None:
    """A signed one-time token as the nonce table can hold it."""
    if nonce is None or bad_text(nonce) is None:
        return nonce
    return "sha256:" + hashlib.sha256(nonce.encode("utf-8", "surrogatepass")).hexdigest()
