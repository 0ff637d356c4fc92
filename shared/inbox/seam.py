"""The jsonb crossing between Python and the inbox's SQL functions, typed on this side.

What goes in (app.receive_inbound_deliveries' deliveries, app.record_send's failure
and attempts) is built as a model and serialized by `sql()`; what comes out
(app.receive_inbound_deliveries' summaries, app.process_inbound_event's outcome) is
validated before any code reads it. A change on either side then fails here, by
name, rather than as a KeyError deep in the pipeline. The SQL is the contract:
field names and meanings follow its comments in supabase/migrations.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, TypeAdapter


class _Seam(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---- into app.receive_inbound_deliveries ------------------------------------------------------


class StoredEvent(_Seam):
    """One event of a verified delivery as app.receive_inbound_events stores it."""

    provider_event_id: str
    event_type: str
    payload: dict[str, Any]
    parsed: dict[str, Any] | None
    parse_error: str | None
    raw: str | None = None  # base64 of what could not be stored as payload (intake.py)

    def sql(self) -> dict[str, Any]:
        item = self.model_dump()
        if item["raw"] is None:
            del item["raw"]  # the SQL reads the key's presence as "kept raw, never retried"
        return item


class Delivery(_Seam):
    """A verified delivery of one account: its events and the signed nonce, if any."""

    account: UUID
    version: str  # the account's, as read to verify the delivery (shared/inbox/accounts.py)
    events: list[StoredEvent]
    nonce: str | None

    def sql(self) -> dict[str, Any]:
        return {
            "account": str(self.account),
            "version": self.version,
            "events": [event.sql() for event in self.events],
            "nonce": self.nonce,
        }


# ---- out of app.receive_inbound_deliveries and app.process_inbound_event -----------------------

EventStatus = Literal["processed", "ignored", "failed"]


class Received(_Seam):
    """A delivery's summary (app.receive_inbound_events), or one retried event's."""

    received: int
    duplicates: int
    processed: int
    ignored: int
    failed: int


class Processed(_Seam):
    """One event's outcome from app.process_inbound_event."""

    status: EventStatus
    reason: str | None = None  # ignored
    error: str | None = None  # failed

    def as_received(self) -> Received:
        """The outcome as the summary of a delivery of this one event."""
        return Received(
            received=1,
            duplicates=0,
            processed=int(self.status == "processed"),
            ignored=int(self.status == "ignored"),
            failed=int(self.status == "failed"),
        )


SUMMARIES: TypeAdapter[list[Received]] = TypeAdapter(list[Received])


# ---- into app.record_send ---------------------------------------------------------------------


class SendFailure(_Seam):
    """Why a send did not end `sent`, kept in messages.error (shared/inbox/outbound.py).

    A field left out stays out of the stored error (serialized unset-excluded)."""

    message: str
    status: int | None
    code: str | int | None
    outcome: Literal["refused", "unavailable", "unknown", "not_sent"]
    retryable: bool
    retry_after: float | None = None
    provider: Any = None

    def sql(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class Attempt(_Seam):
    """One call to the provider (shared/channels/http.py), kept in messages.metadata."""

    attempt: int
    at: str
    ms: float
    status: int | None
    error: str | None
    retry_in: float | None


ATTEMPTS: TypeAdapter[list[Attempt]] = TypeAdapter(list[Attempt])


def attempts_sql(attempts: list[Attempt]) -> list[dict[str, Any]]:
    return [attempt.model_dump() for attempt in attempts]
