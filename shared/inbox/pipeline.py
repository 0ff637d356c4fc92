"""The inbound pipeline, the same for every channel:

    verify → store the raw events (idempotent) → process each → answer 200

The raw events and their processing commit together, each event processed
under a savepoint: an event that cannot be processed is kept as `failed` with
its error while the others land, and the `inbound-retry` job tries it again
with backoff. A provider's retry of a delivery finds its events already stored
and changes nothing; a crash before the commit loses nothing either, because
the provider, having no 200, delivers again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
from pydantic import ValidationError

from shared.channels import channel_named
from shared.channels.base import (
    Account,
    Channel,
    Ignored,
    InboundMessage,
    Parsed,
    RawEvent,
    StatusUpdate,
    WebhookRequest,
)
from shared.channels.http import ProviderClient, ProviderError
from shared.db import Connection
from shared.errors import AppError
from shared.inbox.accounts import load_account, load_accounts
from shared.inbox.ingest import Recorded, apply_status, record_inbound
from shared.web import Runtime

log = logging.getLogger("connectgain.inbox")

MAX_ATTEMPTS = 12  # then the event stays failed for an admin to look at
# Errors that mean "this event cannot be processed (yet)"; anything else is a bug
# and is also kept, with its type, rather than losing the event.
PROCESSING_ERRORS = (AppError, asyncpg.PostgresError, ValidationError, KeyError, ValueError)


async def _ignore(*, conn: Connection, account: Account, event: Ignored) -> Recorded:
    log.info("ignored %s event for account %s: %s", account.channel, account.id, event.reason)
    return Recorded(message_id=None)


async def _inbound(*, conn: Connection, account: Account, event: InboundMessage) -> Recorded:
    return await record_inbound(conn=conn, account=account, message=event)


async def _status(*, conn: Connection, account: Account, event: StatusUpdate) -> Recorded:
    return await apply_status(conn=conn, account=account, status=event)


Handler = Callable[..., Awaitable[Recorded]]
HANDLERS: dict[type[Parsed], Handler] = {
    InboundMessage: _inbound,
    StatusUpdate: _status,
    Ignored: _ignore,
}


@dataclass
class Outcome:
    received: int = 0
    duplicates: int = 0
    processed: int = 0
    ignored: int = 0
    failed: int = 0
    new_contacts: list[tuple[Account, UUID, str]] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {
            "received": self.received,
            "duplicates": self.duplicates,
            "processed": self.processed,
            "ignored": self.ignored,
            "failed": self.failed,
        }


async def store_events(
    *, conn: Connection, account: Account, events: list[RawEvent]
) -> list[asyncpg.Record]:
    """Insert what is new, in the order received; duplicates are skipped by the unique key."""
    rows = await conn.fetch(
        """
        insert into public.inbound_events
          (organization_id, channel_account_id, provider_event_id, event_type, payload)
        select $1, $2, e.id, e.kind, e.payload
          from unnest($3::text[], $4::text[], $5::jsonb[])
               with ordinality as e(id, kind, payload, n)
         order by e.n
        on conflict (channel_account_id, provider_event_id) do nothing
        returning id, provider_event_id, event_type, payload, attempts
        """,
        account.organization_id,
        account.id,
        [e.provider_event_id for e in events],
        [e.event_type for e in events],
        [e.payload for e in events],
    )
    order = {e.provider_event_id: n for n, e in enumerate(events)}
    return sorted(rows, key=lambda r: order[r["provider_event_id"]])


async def process_event(
    *, conn: Connection, channel: Channel, account: Account, row: asyncpg.Record, outcome: Outcome
) -> None:
    event = RawEvent(
        provider_event_id=row["provider_event_id"],
        event_type=row["event_type"],
        payload=row["payload"],
    )
    try:
        async with conn.transaction():  # a savepoint: a failure undoes this event only
            parsed = channel.parse(event, account)
            recorded = await HANDLERS[type(parsed)](conn=conn, account=account, event=parsed)
            status = "ignored" if isinstance(parsed, Ignored) else "processed"
            await conn.execute(
                "update public.inbound_events set status = $2, attempts = attempts + 1,"
                " last_error = null, processed_at = now() where id = $1",
                row["id"],
                status,
            )
    except PROCESSING_ERRORS as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.warning("%s event %s failed: %s", account.channel, event.provider_event_id, error)
        await conn.execute(
            """
            update public.inbound_events
               set status = 'failed', attempts = attempts + 1, last_error = $2,
                   next_attempt_at = case when attempts + 1 >= $3 then 'infinity'
                     else now() + least(interval '30 seconds' * power(2, attempts),
                                        interval '6 hours') end
             where id = $1
            """,
            row["id"],
            error[:2000],
            MAX_ATTEMPTS,
        )
        outcome.failed += 1
        return
    if status == "ignored":
        outcome.ignored += 1
    else:
        outcome.processed += 1
    if recorded.new_contact and recorded.contact_id and isinstance(parsed, InboundMessage):
        outcome.new_contacts.append((account, recorded.contact_id, parsed.sender.external_id))


async def receive(
    runtime: Runtime, *, channel_name: str, account_id: UUID, request: WebhookRequest
) -> Outcome:
    """A provider's webhook delivery, from verification to committed results."""
    channel = channel_named(channel_name)
    async with runtime.db.service_tx() as conn:
        account = await load_account(conn=conn, account_id=account_id, channel=channel_name)
    channel.verify(request, account)  # nothing unverified goes any further
    events = channel.events(request, account)
    outcome = Outcome(received=len(events))
    async with runtime.db.service_tx() as conn:
        stored = await store_events(conn=conn, account=account, events=events)
        outcome.duplicates = len(events) - len(stored)
        for row in stored:
            await process_event(
                conn=conn, channel=channel, account=account, row=row, outcome=outcome
            )
    await enrich_new_contacts(runtime, outcome)
    return outcome


async def retry_due(runtime: Runtime, *, limit: int = 100) -> Outcome:
    """The inbound-retry job: events left pending or failed whose time has come."""
    outcome = Outcome()
    async with runtime.db.service_tx() as conn:
        rows = await conn.fetch(
            """
            select id, channel_account_id, provider_event_id, event_type, payload, attempts
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
        outcome.received = len(rows)
        for row in rows:
            account = accounts[row["channel_account_id"]]
            await process_event(
                conn=conn,
                channel=channel_named(account.channel),
                account=account,
                row=row,
                outcome=outcome,
            )
    await enrich_new_contacts(runtime, outcome)
    return outcome


async def enrich_new_contacts(runtime: Runtime, outcome: Outcome) -> None:
    """After the commit: a new contact's name and avatar from the provider's profile API.

    Once per new contact; a failure only leaves the contact as the webhook described it.
    """
    for account, contact_id, external_id in outcome.new_contacts:
        channel = channel_named(account.channel)
        client = ProviderClient(runtime.http, runtime.settings)
        try:
            profile = await channel.fetch_profile(client, account, external_id)
        except ProviderError as exc:
            log.info("no profile for %s contact %s: %s", account.channel, contact_id, exc)
            continue
        if profile is None:
            continue
        async with runtime.db.service_tx() as conn:
            await conn.execute(
                "update public.contacts set name = coalesce(name, $3),"
                " avatar_url = coalesce(avatar_url, $4)"
                " where id = $1 and organization_id = $2",
                contact_id,
                account.organization_id,
                profile.name,
                profile.avatar_url,
            )
