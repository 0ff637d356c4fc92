"""The inbound pipeline, the same for every channel:

    verify → parse → store the raw events (idempotent) → process each → answer 200

The channel module verifies the delivery and parses each event into its
normalised form here, at the edge. Storing and processing then happen in the
database in one round trip (app.receive_inbound_events), shared by the
deliveries that arrive together (app.receive_inbound_deliveries): each event is stored
once — a provider's redelivery finds it and changes nothing — and processed in
its own subtransaction, dispatched on its kind (message, status, ignored). An
event that cannot be processed is kept as `failed` with its error while the
others land, and the `inbound-retry` job parses and processes it again with
backoff. A crash before the commit loses nothing either: the provider, having
no 200, delivers again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID
from weakref import WeakKeyDictionary, proxy

import asyncpg

from shared import safejson
from shared.channels.base import (
    MALFORMED,
    Account,
    Channel,
    InboundMessage,
    Parsed,
    RawEvent,
    WebhookRequest,
)
from shared.channels.registry import channel_named
from shared.coalesce import Coalescer
from shared.db import Database
from shared.errors import AppError, NotFound
from shared.inbox import intake
from shared.inbox.accounts import Versioned, found, load_accounts, load_versioned
from shared.inbox.contacts import normalize_email, normalize_phone
from shared.inbox.seam import SUMMARIES, Delivery, Processed, Received
from shared.runtime import Runtime

log = logging.getLogger("connectgain.inbox")

# A parser that fails on a payload keeps the event (as failed, with the error)
# rather than losing it; the retry job tries again once the parser is fixed.
# Whatever it raises: a provider's payload can hold any shape (a string where an
# object belongs, a time past year 9999), and no parser bug may lose a delivery.
PARSE_ERRORS = (Exception,)


@dataclass
class Outcome:
    received: int = 0
    duplicates: int = 0
    processed: int = 0
    ignored: int = 0
    failed: int = 0
    # The delivery's account and the provider ids of its inbound messages (not echoes):
    # what the bot pass after the webhook looks at (shared/bots/inline.py).
    account: Account | None = None
    inbound: tuple[str, ...] = ()

    def add(self, result: Received) -> None:
        self.received += result.received
        self.duplicates += result.duplicates
        self.processed += result.processed
        self.ignored += result.ignored
        self.failed += result.failed

    def summary(self) -> dict[str, int]:
        return {
            "received": self.received,
            "duplicates": self.duplicates,
            "processed": self.processed,
            "ignored": self.ignored,
            "failed": self.failed,
        }


def storable(parsed: Parsed) -> dict[str, Any]:
    """The parsed event as the database processes it; senders' addresses normalised."""
    data = parsed.model_dump(mode="json")
    if isinstance(parsed, InboundMessage):
        data["sender"]["phone"] = normalize_phone(parsed.sender.phone)
        data["sender"]["email"] = normalize_email(parsed.sender.email)
    return data


def parse(channel: Channel, account: Account, event: RawEvent) -> dict[str, Any]:
    """`parsed`, or `parse_error` when the channel could not make sense of the event."""
    try:
        if event.event_type == MALFORMED:
            raise ValueError(f"not the provider's shape: {event.payload.get('error')}")
        return {"parsed": storable(channel.parse(event, account)), "parse_error": None}
    except PARSE_ERRORS as exc:
        error = intake.error_text(exc)
        log.warning(
            "%s event %s unparsable: %s",
            account.channel,
            safejson.printable(event.provider_event_id),
            error,
        )
        return {"parsed": None, "parse_error": error}


async def receive(
    runtime: Runtime, *, channel_name: str, account_id: UUID, request: WebhookRequest
) -> Outcome:
    """A provider's webhook delivery, from verification to committed results.

    The account is the one read for an earlier delivery when there is one: its
    version goes with the delivery, and the database refuses it if the account has
    changed since. Then, or when the delivery does not verify against it (the
    secret may have been rotated), the account is read again and the delivery
    verified anew; no delivery is ever accepted on secrets no longer current."""
    together = _coalescers(runtime.db)
    channel = channel_named(channel_name)
    known = together.known.get(account_id)
    if known is not None:
        try:
            return await _receive(runtime, together, channel, known, request)
        except (AppError, asyncpg.PostgresError) as exc:
            if isinstance(exc, asyncpg.PostgresError) and not _changed(exc):
                raise
            together.known.pop(account_id, None)
    read = await together.accounts.submit(account_id)
    if read is None:
        raise NotFound("No such channel account")
    if len(together.known) >= MAX_KNOWN_ACCOUNTS:
        together.known.clear()
    together.known[account_id] = read
    return await _receive(runtime, together, channel, read, request)


async def _receive(
    runtime: Runtime,
    together: _Together,
    channel: Channel,
    read: Versioned,
    request: WebhookRequest,
) -> Outcome:
    found(read.account, channel.name)
    delivery = prepare(channel, read.account, request, version=read.version)
    result = await together.deliveries.submit(delivery)
    outcome = Outcome(account=read.account, inbound=inbound_ids(delivery))
    outcome.add(result)
    return outcome


def inbound_ids(delivery: Delivery) -> tuple[str, ...]:
    return tuple(
        e.parsed["provider_message_id"]
        for e in delivery.events
        if e.parsed is not None and e.parsed.get("kind") == "message" and not e.parsed.get("echo")
    )


def _changed(exc: asyncpg.PostgresError) -> bool:
    return exc.sqlstate == "CG409" and getattr(exc, "hint", None) == "account_changed"


def prepare(
    channel: Channel, account: Account, request: WebhookRequest, *, version: str
) -> Delivery:
    """A delivery verified and parsed, as app.receive_inbound_deliveries takes it."""
    nonce = channel.verify(request, account)  # nothing unverified goes any further
    # Verified, it is kept whatever it holds (shared/inbox/intake.py).
    try:
        split = channel.events(request, account)
    except Exception as exc:
        log.warning("%s delivery unreadable, kept raw: %s", account.channel, intake.error_text(exc))
        events = [intake.unreadable(request, exc)]
    else:
        clean = intake.clean(request)
        events = [
            intake.storable(e, lambda e: parse(channel, account, e), clean=clean) for e in split
        ]
    return Delivery(
        account=account.id, version=version, events=events, nonce=intake.storable_nonce(nonce)
    )


async def load_batch(db: Database, account_ids: list[UUID]) -> list[Versioned | None]:
    async with db.service_conn() as conn:
        found = await load_versioned(conn=conn, account_ids=account_ids)
    return [found.get(account_id) for account_id in account_ids]


async def receive_batch(db: Database, deliveries: list[Delivery]) -> list[Received]:
    """Deliveries in one transaction, a summary for each in their order."""
    async with db.service_conn() as conn:
        results = await conn.fetchval(
            "select app.receive_inbound_deliveries($1)", [d.sql() for d in deliveries]
        )
    return SUMMARIES.validate_python(results)


# Concurrent deliveries share their two round trips (shared/coalesce.py). Small
# batches, a few in flight: the server keeps parsing the next requests while
# Postgres works on both cores, instead of taking turns with one large batch
# (3 × 6 did best in bench/ingest.py on 2 cores; 1 × 16 halved the throughput).
IN_FLIGHT = 3
MAX_BATCH = 6
# Accounts kept between deliveries (a few hundred bytes each); past this, all are forgotten.
MAX_KNOWN_ACCOUNTS = 10_000


@dataclass(frozen=True)
class _Together:
    accounts: Coalescer[UUID, Versioned | None]
    deliveries: Coalescer[Delivery, Received]
    known: dict[UUID, Versioned] = field(default_factory=dict)


_COALESCERS: WeakKeyDictionary[Database, _Together] = WeakKeyDictionary()


def _coalescers(db: Database) -> _Together:
    if db not in _COALESCERS:
        pool = proxy(db)  # the value must not keep its weak key alive
        _COALESCERS[db] = _Together(
            accounts=Coalescer(
                lambda ids: load_batch(pool, ids), max_in_flight=IN_FLIGHT, max_batch=MAX_BATCH
            ),
            deliveries=Coalescer(
                lambda items: receive_batch(pool, items),
                max_in_flight=IN_FLIGHT,
                max_batch=MAX_BATCH,
            ),
        )
    return _COALESCERS[db]


async def retry_due(runtime: Runtime, *, limit: int = 100) -> Outcome:
    """The inbound-retry job: events left failed (or pending) whose time has come."""
    outcome = Outcome()
    async with runtime.db.service_tx() as conn:
        # Replay protection only needs nonces younger than the providers' tolerance.
        await conn.execute(
            "delete from private.webhook_nonces where seen_at < now() - interval '1 day'"
        )
        rows = await conn.fetch(
            """
            select id, channel_account_id, provider_event_id, event_type, payload
              from public.inbound_events
             where status in ('pending', 'failed') and next_attempt_at <= now()
             order by next_attempt_at
             limit $1
               for update skip locked
            """,
            limit,
        )
        accounts = await load_accounts(
            conn=conn, account_ids=list({r["channel_account_id"] for r in rows})
        )
        for row in rows:
            account = accounts[row["channel_account_id"]]
            event = RawEvent(
                provider_event_id=row["provider_event_id"],
                event_type=row["event_type"],
                payload=row["payload"],
            )
            item = parse(channel_named(account.channel), account, event)
            result = await conn.fetchval(
                "select app.process_inbound_event($1, $2, $3, $4)",
                row["id"],
                account.id,
                item["parsed"],
                item["parse_error"],
            )
            outcome.add(Processed.model_validate(result).as_received())
    return outcome
