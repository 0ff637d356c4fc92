"""Bot messages out, after the session's transaction commits: in order, one at a time.

The inbox's send path (`shared/inbox/outbound.deliver`) wraps the claim and the
outcome each in a transaction of its own, for an Idempotency-Key to share them.
A bot's message has no key, so each is one statement: the claim (queued → sending,
unless the sweeper gave it up meanwhile), the provider call outside any transaction,
and the outcome (app.record_send) — two round trips per message instead of six.
"""

from __future__ import annotations

import logging

from shared.inbox.outbound import Outbound, call_provider, record
from shared.runtime import Runtime

log = logging.getLogger("connectgain.bots")

CLAIM = (
    "update public.messages set status = 'sending',"
    " send_deadline = now() + make_interval(secs => $3)"
    " where id = $1 and organization_id = $2 and status = 'queued' returning true"
)


async def send_all(runtime: Runtime, jobs: list[Outbound]) -> None:
    """Each message sent once, in order; a refusal is kept on the message (failed /
    unknown) for people to see, and the next is still sent."""
    for job in jobs:
        message = job.message
        async with runtime.db.service_conn() as conn:
            claimed = await conn.fetchval(
                CLAIM, message["id"], message["organization_id"], runtime.settings.claim_seconds
            )
        if not claimed:  # given up by the outbound sweep while we were slow: never sent
            log.info("bot message %s waited too long and was not sent", message["id"])
            continue
        call = await call_provider(runtime, job)
        async with runtime.db.service_conn() as conn:
            await record(conn, message, call.outcome, call.provider_id, call.error, call.attempts)
        if call.error is not None:
            log.info("bot message %s not sent: %s", message["id"], call.error.message)
