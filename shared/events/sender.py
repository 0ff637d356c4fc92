"""The outbound-webhooks consumer: each event to every endpoint subscribed to its type.

One delivery row per (event, endpoint), made when the event is dispatched.
Attempts follow Standard Webhooks' schedule (at once, then 5 s, 5 min, 30 min,
2 h, 5 h, 10 h, 10 h: about 28 hours), continued with two waits of a day, so an
endpoint down for up to about three days (the last attempt comes 3 days 3.6
hours after the first) still receives the event. Each is signed anew with a
fresh timestamp and the same webhook-id, and logged (status, latency, a bounded
excerpt of the answer).
Deliveries go out concurrently, at most `webhook_concurrency` at a time and a
quarter of that per endpoint, each within `webhook_timeout_seconds` in all, so a
slow endpoint holds a few slots and never the others. An attempt starts only if
it can end before the batch's lease does; the rest are released untouched, due
again at once, so no other worker can take a row while its attempt is under way.
An endpoint that fails for `webhook_disable_after_hours` without a success is
disabled, and the organization gets a `webhook_endpoint.disabled` event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

import httpx

from shared.db import Connection
from shared.events import egress, signing
from shared.events.base import (
    RELEASED,
    Claimed,
    Consumer,
    Event,
    Recorded,
    Result,
    Retries,
    cancelled,
    dead,
    retry,
)
from shared.events.catalog import EVENT_TYPES
from shared.runtime import Runtime
from shared.safejson import printable

EXCERPT_CHARS = 1000
STANDARD_WEBHOOKS_WAITS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
# Past Standard Webhooks' ~28 hours: a day at a time, to about three days.
WEBHOOK_WAITS = (*STANDARD_WEBHOOKS_WAITS, timedelta(days=1), timedelta(days=1))


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt, as public.webhook_attempts keeps it."""

    endpoint_id: UUID
    organization_id: UUID
    at: datetime
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None
    excerpt: str | None


@dataclass(frozen=True)
class Target:
    id: UUID
    organization_id: UUID
    url: str
    enabled: bool
    keys: list[str]


def _excerpt(raw: bytes) -> str | None:
    if not raw:
        return None
    text: str = printable(raw[: EXCERPT_CHARS * 4].decode("utf-8", "replace"))
    return text.replace("\x00", "")[:EXCERPT_CHARS]


async def _post(http: httpx.AsyncClient, target: Target, event: Event, *, total: float) -> Attempt:
    """One signed POST; never raises for the endpoint's sake."""
    body = signing.body(event)
    at = datetime.now(UTC)  # the signature's timestamp is when it is sent, whatever the clock
    head = signing.headers(msg_id=signing.message_id(event), body=body, keys=target.keys, at=at)
    started = time.monotonic()
    status: int | None = None
    error: str | None = None
    raw = b""
    try:
        async with asyncio.timeout(total):
            async with http.stream("POST", target.url, content=body.encode(), headers=head) as r:
                status = r.status_code
                async for chunk in r.aiter_bytes():
                    raw += chunk
                    if len(raw) >= EXCERPT_CHARS * 4:
                        break
    except TimeoutError:
        error = f"no answer within {total:g} s"
    except egress.Refused as exc:
        error = f"refused: {exc}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    latency = int((time.monotonic() - started) * 1000)
    ok = status is not None and 200 <= status < 300 and error is None
    if error is None and not ok:
        error = f"HTTP {status}" + (
            " (redirects are not followed)" if 300 <= (status or 0) < 400 else ""
        )
    return Attempt(
        endpoint_id=target.id,
        organization_id=target.organization_id,
        at=at,
        ok=ok,
        status_code=status,
        latency_ms=latency,
        error=error[:1000] if error else None,
        excerpt=_excerpt(raw),
    )


async def _targets(runtime: Runtime, ids: set[UUID], now: datetime) -> dict[UUID, Target]:
    async with runtime.db.service_conn() as conn:
        rows = await conn.fetch(
            """
            select e.id, e.organization_id, e.url, e.enabled, s.secret,
                   case when s.previous_until > $2 then s.previous_secret end as previous
              from public.webhook_endpoints e
              left join private.webhook_secrets s on s.endpoint_id = e.id
             where e.id = any($1::uuid[])
            """,
            list(ids),
            now,
        )
    return {
        r["id"]: Target(
            id=r["id"],
            organization_id=r["organization_id"],
            url=r["url"],
            enabled=r["enabled"],
            keys=[k for k in (r["secret"], r["previous"]) if k],
        )
        for r in rows
    }


class WebhookConsumer(Consumer):
    name: ClassVar[str] = "webhooks"
    event_types: ClassVar[frozenset[str] | None] = frozenset(EVENT_TYPES)

    def __init__(self) -> None:
        super().__init__(retries=Retries(WEBHOOK_WAITS))

    async def fan_out(
        self, *, conn: Connection, events: Sequence[Event]
    ) -> list[tuple[int, UUID | None]]:
        wanted = [e for e in events if self.wants(e.type)]
        if not wanted:
            return []
        rows = await conn.fetch(
            """
            select ev.id, w.id as endpoint
              from unnest($1::bigint[], $2::uuid[], $3::text[]) ev(id, org, type)
              join public.webhook_endpoints w
                on w.organization_id = ev.org and w.enabled and ev.type = any (w.events)
             order by ev.id
            """,
            [e.id for e in wanted],
            [e.organization_id for e in wanted],
            [e.type for e in wanted],
        )
        return [(r["id"], r["endpoint"]) for r in rows]

    async def handle(
        self, *, runtime: Runtime, deliveries: Sequence[Claimed], now: datetime, deadline: float
    ) -> list[Result]:
        settings = runtime.settings
        total = settings.webhook_timeout_seconds
        targets = await _targets(runtime, {d.target for d in deliveries if d.target}, now)
        slots = asyncio.Semaphore(settings.webhook_concurrency)
        # One endpoint's backlog never takes every slot.
        per_endpoint = max(1, settings.webhook_concurrency // 4)
        endpoint_slots = {t: asyncio.Semaphore(per_endpoint) for t in targets}

        async def one(http: httpx.AsyncClient, delivery: Claimed) -> Result:
            target = targets.get(delivery.target) if delivery.target else None
            if target is None or target.organization_id != delivery.event.organization_id:
                return cancelled("the endpoint was deleted")
            if not target.enabled:
                return dead("the endpoint is disabled")
            if not target.keys:
                return dead("the endpoint has no signing secret")
            if settings.webhook_egress != "local" and not target.url.startswith("https://"):
                # a row written past the function (PostgREST) is held to the same rule
                return dead("the endpoint's URL is not https")
            async with endpoint_slots[target.id], slots:
                if time.monotonic() + total > deadline:
                    return RELEASED  # it could outlive the lease: left for the next batch
                attempt = await _post(http, target, delivery.event, total=total)
            if attempt.ok:
                return Result("done", detail=attempt)
            return retry(attempt.error or "failed", attempt)

        async with egress.client(settings) as http:
            return list(await asyncio.gather(*(one(http, d) for d in deliveries)))

    async def record(
        self, *, conn: Connection, runtime: Runtime, outcomes: Sequence[Recorded], now: datetime
    ) -> None:
        attempts = [
            (o.claimed, o.result.detail) for o in outcomes if isinstance(o.result.detail, Attempt)
        ]
        if not attempts:
            return
        await conn.execute(
            """
            insert into public.webhook_attempts
                   (organization_id, endpoint_id, delivery_id, attempt, attempted_at,
                    status_code, latency_ms, error, response_excerpt)
            select * from unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::int[],
                                 $5::timestamptz[], $6::int[], $7::int[], $8::text[], $9::text[])
            """,
            [a.organization_id for _, a in attempts],
            [a.endpoint_id for _, a in attempts],
            [c.id for c, _ in attempts],
            [c.attempt for c, _ in attempts],
            [a.at for _, a in attempts],
            [a.status_code for _, a in attempts],
            [a.latency_ms for _, a in attempts],
            [a.error for _, a in attempts],
            [a.excerpt for _, a in attempts],
        )
        await _update_health(conn, runtime, [a for _, a in attempts], now)


async def _update_health(
    conn: Connection, runtime: Runtime, attempts: list[Attempt], now: datetime
) -> None:
    """A success clears an endpoint's failing streak; a streak too long disables it."""
    succeeded = {a.endpoint_id for a in attempts if a.ok}
    failed = {a.endpoint_id for a in attempts if not a.ok} - succeeded
    disable_after = timedelta(hours=runtime.settings.webhook_disable_after_hours)
    await conn.execute(
        """
        with ok as (
          update public.webhook_endpoints set failing_since = null, last_success_at = $3
           where id = any($1::uuid[])
        )
        update public.webhook_endpoints
           set failing_since = coalesce(failing_since, $3), last_failure_at = $3
         where id = any($2::uuid[])
        """,
        list(succeeded),
        list(failed),
        now,
    )
    disabled = await conn.fetch(
        """
        update public.webhook_endpoints
           set enabled = false,
               disabled_reason = 'failed without a success since ' || failing_since::text
         where id = any($1::uuid[]) and enabled and failing_since <= $2::timestamptz - $3::interval
        returning id, organization_id, url, failing_since, disabled_reason
        """,
        list(failed),
        now,
        disable_after,
    )
    for row in disabled:
        body: dict[str, Any] = {
            "id": str(row["id"]),
            "url": row["url"],
            "failing_since": row["failing_since"].isoformat(),
            "reason": row["disabled_reason"],
        }
        await conn.execute(
            "select app.emit($1, 'webhook_endpoint.disabled', $2, $3)",
            row["organization_id"],
            row["id"],
            body,
        )
