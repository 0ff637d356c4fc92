"""New contacts' names and avatars from their provider's profile API, by the events worker.

A webhook answers its provider without waiting on a profile call: the contact is
stored as the webhook described it, and its `contact.created` event brings it
here. Only contacts that came in on a channel with a profile API (Messenger,
Instagram) get a delivery. A name or avatar already set is never overwritten, so a
late profile cannot undo an agent's edit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

from shared.channels.answers import ProviderError
from shared.channels.base import Account, Channel
from shared.channels.http import ProviderClient
from shared.channels.registry import CHANNELS
from shared.db import Connection
from shared.events.base import (
    RELEASED,
    Claimed,
    Consumer,
    Event,
    Result,
    Retries,
    cancelled,
    retry,
)
from shared.inbox.accounts import load_accounts
from shared.runtime import Runtime

log = logging.getLogger(__name__)

# The channels whose class has a profile API of its own.
PROFILE_CHANNELS = tuple(
    name for name, ch in CHANNELS.items() if type(ch).fetch_profile is not Channel.fetch_profile
)
# A profile call is short; one that cannot finish before the lease ends waits for the next run.
CALL_SECONDS = 15.0

# The identity the contact came in by, and the account of its first conversation there.
ORIGIN = """
select distinct on (i.contact_id) i.contact_id, i.channel::text as channel, i.external_id,
       c.channel_account_id
  from public.contact_identities i
  join public.conversations c
    on c.organization_id = i.organization_id and c.contact_id = i.contact_id
  join public.channel_accounts a on a.id = c.channel_account_id and a.channel = i.channel
 where i.contact_id = any($1::uuid[]) and i.channel::text = any($2::text[])
 order by i.contact_id, c.created_at
"""


class ProfileConsumer(Consumer):
    name: ClassVar[str] = "contact_profiles"
    event_types: ClassVar[frozenset[str] | None] = frozenset({"contact.created"})

    def __init__(self) -> None:
        # Rate limits and outages pass; a profile refused (4xx) stays refused.
        super().__init__(retries=Retries(tuple(timedelta(seconds=s) for s in (30, 300, 1800))))

    async def fan_out(
        self, *, conn: Connection, events: Sequence[Event]
    ) -> list[tuple[int, UUID | None]]:
        wanted = {e.aggregate_id: e.id for e in events if self.wants(e.type) and e.aggregate_id}
        if not wanted or not PROFILE_CHANNELS:
            return []
        rows = await conn.fetch(ORIGIN, list(wanted), list(PROFILE_CHANNELS))
        return [(wanted[row["contact_id"]], None) for row in rows]

    async def handle(
        self, *, runtime: Runtime, deliveries: Sequence[Claimed], now: datetime, deadline: float
    ) -> list[Result]:
        contacts = [d.event.aggregate_id for d in deliveries if d.event.aggregate_id]
        async with runtime.db.pool.acquire() as conn:
            origins = {
                row["contact_id"]: row
                for row in await conn.fetch(ORIGIN, contacts, list(PROFILE_CHANNELS))
            }
            accounts = await load_accounts(
                conn=conn, account_ids=list({o["channel_account_id"] for o in origins.values()})
            )
        results: list[Result] = []
        for delivery in deliveries:
            origin = origins.get(delivery.event.aggregate_id)
            account = accounts.get(origin["channel_account_id"]) if origin else None
            if origin is None or account is None:
                results.append(cancelled("the contact or its channel account is gone"))
            elif time.monotonic() + CALL_SECONDS > deadline:
                results.append(RELEASED)
            else:
                results.append(await self._enrich(runtime, delivery, origin, account))
        return results

    async def _enrich(
        self, runtime: Runtime, delivery: Claimed, origin: Any, account: Account
    ) -> Result:
        channel = CHANNELS[origin["channel"]]
        client = ProviderClient(runtime.http, runtime.settings)
        try:
            profile = await channel.fetch_profile(client, account, origin["external_id"])
        except ProviderError as exc:
            transient = exc.status is None or exc.status == 429 or exc.status >= 500
            log.info("no profile for %s contact %s: %s", account.channel, origin["contact_id"], exc)
            return retry(str(exc)) if transient else cancelled(str(exc))
        if profile is None:
            return cancelled("the provider has no profile for this contact")
        async with runtime.db.service_tx() as conn:
            await conn.execute(
                "update public.contacts set name = coalesce(name, $3),"
                " avatar_url = coalesce(avatar_url, $4)"
                " where id = $1 and organization_id = $2",
                origin["contact_id"],
                delivery.event.organization_id,
                profile.name,
                profile.avatar_url,
            )
        return Result("done")
