"""Dispatching running campaigns: exactly once per recipient, at the account's cap.

A dispatcher keeps the provider busy without a transaction per send. Per campaign it
claims a batch (at most BATCH_SPAN seconds of the cap) with its send slots in one
transaction, and starts sending it as a task, wave by wave (WAVE seconds of slots):
just before a wave's first slot its messages are taken queued → sending in one UPDATE
(the claim that lets one caller send a message, ever), each is sent concurrently at
its own slot, and the wave's outcomes are recorded in one transaction
(shared/campaigns/claim.py). Meanwhile the next
batch is claimed, as long as the account's slots are reserved no further than
HORIZON ahead, so one dispatcher alone holds the cap and several share it.

A dispatcher killed after a claim leaves recipients `sending` with `queued` messages:
once their slot is long past another run takes them back; messages it had taken are
never sent again (the outbound sweep marks them unknown). WhatsApp's messaging limit
(131048) pauses the campaign: the batch's sends not yet made are not made, and their
recipients are queued again for a resume.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID
from weakref import WeakKeyDictionary

import asyncpg

from shared.campaigns.claim import NOT_MADE, Job, claim_batch, record, requeue, take
from shared.campaigns.content import Content
from shared.campaigns.pace import Clock, Pace, Window
from shared.campaigns.progress import broadcast_progress
from shared.campaigns.rate import next_free, rate_of
from shared.channels.base import Account, Channel, OutboundMessage
from shared.channels.registry import channel_named
from shared.channels.whatsapp.templates import TemplateSend
from shared.db import Connection
from shared.errors import PaymentRequired, from_postgres
from shared.inbox.accounts import load_account, webhook_url
from shared.inbox.outbound import Call, Outbound, call_provider
from shared.runtime import Runtime
from shared.templates import whatsapp as wa_templates

# WhatsApp's spam rate limit (the account's messaging limit): sending on is futile.
PAUSE_CODES = frozenset({"131048"})
BATCH_SPAN = 0.25  # seconds of the cap one batch holds (at least one recipient)
HORIZON = 2.0  # seconds ahead an account's slots may be reserved (claims under load lag)
LEAD = 0.05  # a wave's messages are taken this long before its first slot
WAVE = 0.05  # seconds of a batch's slots taken for sending at once
# Provider calls under way at once in a process: fewer than the HTTP client's pooled
# connections (httpx: 100), so a call that passed the rate window never queues for one.
IN_FLIGHT = 64
# Seconds of sends past their slots (held by the pacing window) after which no more
# batches are claimed: a process short of time never piles up claimed sends.
BEHIND = 0.5
PROGRESS_EVERY = 1.0  # seconds between a running campaign's progress broadcasts


@dataclass(frozen=True)
class Campaign:
    id: UUID
    organization_id: UUID
    channel_account_id: UUID
    channel: str
    settings: dict[str, Any]
    body: str | None
    template: dict[str, Any] | None
    local_time: bool = False

    @property
    def rate(self) -> float:
        return rate_of(channel=self.channel, settings=self.settings)


@dataclass(frozen=True)
class Prepared:
    """What every batch of a campaign shares, loaded once per run."""

    content: Content
    channel: Channel
    account: Account
    callback: str


class Dispatcher:
    def __init__(self, runtime: Runtime, *, batch: int, clock: Clock) -> None:
        self.runtime, self.batch, self.clock = runtime, batch, clock
        self.counts = {"sent": 0, "failed": 0, "paused": 0}
        self.prepared: dict[UUID, Prepared] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        # the run broadcasts each campaign's progress when it ends, and every
        # PROGRESS_EVERY seconds while it lasts
        self.broadcast_at: dict[UUID, float] = {}
        self.started = time.monotonic()

    async def _prepare(self, campaign: Campaign) -> Prepared:
        if campaign.id not in self.prepared:
            async with self.runtime.db.service_tx() as conn:
                template = None
                if campaign.template is not None:
                    template = await wa_templates.find(
                        conn=conn,
                        channel_account_id=campaign.channel_account_id,
                        name=str(campaign.template["name"]),
                        language=str(campaign.template["language"]),
                    )
                account = await load_account(conn=conn, account_id=campaign.channel_account_id)
                organization = await conn.fetchval(
                    "select name from public.organizations where id = $1",
                    campaign.organization_id,
                )
            channel = channel_named(campaign.channel)
            send = (
                None
                if campaign.template is None
                else TemplateSend.model_validate(campaign.template)
            )
            self.prepared[campaign.id] = Prepared(
                Content(channel, campaign.body, template, send, {"name": organization}),
                channel,
                account,
                webhook_url(self.runtime.settings, campaign.channel, campaign.channel_account_id),
            )
        return self.prepared[campaign.id]

    async def plan(self, campaign: Campaign) -> float | None:
        """Claim the campaign's next batch and start sending it. None: nothing is left
        to claim; else the seconds until another batch may be claimed (0: now)."""
        prepared = await self._prepare(campaign)
        now, rate = self.clock.now(), campaign.rate
        if Window.of(campaign.channel_account_id, rate).due > rate * BEHIND:
            return WAVE  # the process's sends lag their slots: claim more once they catch up
        try:
            async with self.runtime.db.service_tx() as conn:
                free = await next_free(conn=conn, channel_account_id=campaign.channel_account_id)
                if free is not None and free > now + timedelta(seconds=HORIZON):
                    return (free - now).total_seconds() - HORIZON
                jobs, failed = await claim_batch(
                    conn,
                    campaign=campaign,
                    content=prepared.content,
                    rate=rate,
                    limit=max(1, min(self.batch, int(rate * BATCH_SPAN))),
                    clock=self.clock.now,
                    lead=2 * LEAD,
                    orphaned_after=self.runtime.settings.claim_seconds / 4,
                )
        except asyncpg.PostgresError as exc:
            refused = from_postgres(exc)
            if not isinstance(refused, PaymentRequired):
                raise
            # the plan's outbound messages are used up: stop this campaign, not the run
            async with self.runtime.db.service_tx() as conn:
                await self._pause(conn, campaign, str(refused))
            return None
        self.counts["failed"] += failed
        if not jobs:
            return 0.0 if failed else None
        task = asyncio.create_task(self._send(campaign, prepared, jobs))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return 0.0

    async def _send(self, campaign: Campaign, prepared: Prepared, jobs: list[Job]) -> None:
        stop, limit = asyncio.Event(), _in_flight()
        pace = Pace(Window.of(campaign.channel_account_id, campaign.rate), self.clock)

        async def one(job: Job) -> Call:
            await self.clock.until(job.slot)
            outbound = OutboundMessage(
                to=job.address, callback_url=prepared.callback, text=job.text, metadata=job.options
            )
            # each attempt is paced as it is written (shared/campaigns/pace.py), holding a
            # call's place: the calls under way stay fewer than the pooled connections
            pace.window.due += 1
            try:
                async with limit:
                    if stop.is_set():
                        return Call(None, NOT_MADE, None, [])
                    call = await call_provider(
                        self.runtime,
                        Outbound(job.message, prepared.channel, prepared.account, outbound),
                        pace=pace,
                    )
            finally:
                pace.window.due -= 1
            if call.error is not None and str(call.error.code) in PAUSE_CODES:
                stop.set()
            return call

        async def settle(sends: list[tuple[Job, asyncio.Task[Call]]], left: list[Job]) -> None:
            outcomes = [(j.message["id"], await task) for j, task in sends]
            outcomes += [(j.message["id"], Call(None, NOT_MADE, None, [])) for j in left]
            await self._record(campaign, outcomes)

        waves = _waves(jobs)
        # the sends of a batch stop with it (a dispatcher killed stops its sends)
        async with asyncio.TaskGroup() as group:
            for i, wave in enumerate(waves):
                if stop.is_set():  # the messaging limit: later waves are never taken
                    group.create_task(settle([], [j for w in waves[i:] for j in w]))
                    break
                await self.clock.until(wave[0].slot - timedelta(seconds=LEAD))
                async with self.runtime.db.service_tx() as conn:
                    taken = await take(
                        conn,
                        campaign_id=campaign.id,
                        jobs=wave,
                        claim_seconds=self.runtime.settings.claim_seconds,
                    )
                # jobs not taken wait: the campaign was paused or cancelled meanwhile
                sends = [(j, group.create_task(one(j))) for j in wave if j.message["id"] in taken]
                if sends:  # each wave's outcomes are recorded as soon as they are all in
                    group.create_task(settle(sends, []))
                await asyncio.sleep(0)  # the wave's sends start waiting for their slots

    async def _record(self, campaign: Campaign, outcomes: list[tuple[UUID, Call]]) -> None:
        unmade = [message_id for message_id, c in outcomes if c.error is NOT_MADE]
        limited = next(
            (c.error for _, c in outcomes if c.error and str(c.error.code) in PAUSE_CODES), None
        )
        async with self.runtime.db.service_tx() as conn:
            await record(
                conn,
                organization_id=campaign.organization_id,
                channel_account_id=campaign.channel_account_id,
                outcomes=outcomes,
            )
            await requeue(conn, campaign_id=campaign.id, message_ids=unmade)
            if limited is not None:
                await self._pause(
                    conn, campaign, f"WhatsApp messaging limit reached (error {limited.code})"
                )
            if (
                time.monotonic() - self.broadcast_at.get(campaign.id, self.started)
                >= PROGRESS_EVERY
            ):
                self.broadcast_at[campaign.id] = time.monotonic()
                await broadcast_progress(conn, campaign.organization_id, campaign.id)
        self.counts["sent"] += sum(1 for _, c in outcomes if c.error is None)
        self.counts["failed"] += sum(1 for _, c in outcomes if c.error and c.error is not NOT_MADE)

    async def _pause(self, conn: Connection, campaign: Campaign, reason: str) -> None:
        if await conn.fetchval(
            "update public.campaigns set status = 'paused', updated_at = now(),"
            " pause_reason = $2 where id = $1 and status = 'running' returning true",
            campaign.id,
            reason,
        ):
            self.counts["paused"] += 1

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks))


_LIMITS: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = WeakKeyDictionary()


def _in_flight() -> asyncio.Semaphore:
    """The process's IN_FLIGHT places (one per event loop: a semaphore binds to its loop)."""
    loop = asyncio.get_running_loop()
    if loop not in _LIMITS:
        _LIMITS[loop] = asyncio.Semaphore(IN_FLIGHT)
    return _LIMITS[loop]


def _waves(jobs: list[Job]) -> list[list[Job]]:
    """The batch's jobs in slot order, cut every WAVE seconds: each wave's messages are
    taken just before it, so a dispatcher killed holds at most a wave taken unsent."""
    waves: list[list[Job]] = []
    for job in sorted(jobs, key=lambda j: j.slot):
        if waves and (job.slot - waves[-1][0].slot).total_seconds() < WAVE:
            waves[-1].append(job)
        else:
            waves.append([job])
    return waves
