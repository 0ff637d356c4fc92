"""Dispatch runs: what the cron function (functions/campaign_dispatch.py) calls.

A run starts the scheduled campaigns whose time has come, drives one Dispatcher
(shared/campaigns/dispatch.py) over the running campaigns until nothing is left to
claim or its time is up, then completes the campaigns with nothing left to send.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from shared.campaigns.dispatch import Campaign, Dispatcher
from shared.campaigns.pace import Clock
from shared.campaigns.progress import broadcast_progress
from shared.campaigns.snapshot import EARLIEST_ZONE, start_campaign
from shared.errors import AppError
from shared.runtime import Runtime


async def due_campaigns(conn: Any) -> list[Campaign]:
    rows = await conn.fetch(
        "select c.id, c.organization_id, c.channel_account_id, a.channel::text as channel,"
        " a.settings, c.body, c.template, c.local_time from public.campaigns c"
        " join public.channel_accounts a on a.id = c.channel_account_id"
        " where c.status = 'running' order by c.started_at"
    )
    return [Campaign(**dict(r)) for r in rows]


async def run(
    runtime: Runtime, *, batch: int, seconds: float, clock: Clock | None = None
) -> dict[str, int]:
    """Claim and send batches until nothing is left to claim or `seconds` have gone by
    (0: one batch per campaign), then finish the batches under way; a cron call each
    minute keeps campaigns moving at their accounts' rates."""
    clock = clock or Clock()
    dispatcher = Dispatcher(runtime, batch=batch, clock=clock)
    started = time.monotonic()
    await start_due(runtime, now=clock.now())
    async with runtime.db.service_tx() as conn:
        campaigns = await due_campaigns(conn)
    active = {c.id: c for c in campaigns}
    try:
        while active:
            waits: list[float] = []
            for campaign in list(active.values()):
                wait = await dispatcher.plan(campaign)
                if wait is None:
                    del active[campaign.id]
                else:
                    waits.append(wait)
            if not waits or time.monotonic() - started >= seconds:
                break
            if (pause := min(waits)) > 0:
                await clock.until(clock.now() + timedelta(seconds=pause))
            async with runtime.db.service_tx() as conn:
                running = {c.id for c in await due_campaigns(conn)}
            active = {k: c for k, c in active.items() if k in running}
        await dispatcher.drain()
    except BaseException:
        for task in dispatcher.tasks:  # a dispatcher stopped (or killed) stops its sends
            task.cancel()
        raise
    async with runtime.db.service_tx() as conn:
        for campaign in campaigns:
            await _complete(conn, campaign.id)
            await broadcast_progress(conn, campaign.organization_id, campaign.id)
    return dispatcher.counts


async def dispatch(
    runtime: Runtime, *, batch: int = 100, clock: Clock | None = None
) -> dict[str, int]:
    """One pass: one batch per running campaign, sent and recorded."""
    return await run(runtime, batch=batch, seconds=0, clock=clock)


async def _complete(conn: Any, campaign_id: UUID) -> None:
    """A running campaign with nothing queued or under way is completed."""
    await conn.execute(
        "update public.campaigns set status = 'completed', finished_at = now(),"
        " updated_at = now() where id = $1 and status = 'running'"
        " and not exists (select 1 from public.campaign_recipients r"
        "   left join public.messages m on m.id = r.message_id"
        "   where r.campaign_id = $1 and (r.status = 'queued' or m.status = 'queued'"
        "     or (m.status = 'sending' and m.send_deadline > now())))",
        campaign_id,
    )


async def start_due(runtime: Runtime, *, now: datetime) -> None:
    """Start the scheduled campaigns whose time has come; one whose audience is now
    empty is cancelled with the reason."""
    async with runtime.db.service_tx() as conn:
        due = await conn.fetch(
            # a local-time campaign starts when its wall-clock time first comes anywhere
            "select organization_id, id from public.campaigns"
            " where status = 'scheduled' and (starts_at <= $1 or (local_time and"
            "   (starts_at at time zone timezone) at time zone $2 <= $1)) order by starts_at",
            now,
            EARLIEST_ZONE,
        )
    for row in due:
        async with runtime.db.service_tx() as conn:
            try:
                await start_campaign(
                    conn=conn, organization_id=row["organization_id"], campaign_id=row["id"]
                )
            except AppError as exc:
                await conn.execute(
                    "update public.campaigns set status = 'cancelled', pause_reason = $2,"
                    " finished_at = now(), updated_at = now()"
                    " where id = $1 and status = 'scheduled'",
                    row["id"],
                    exc.message,
                )
