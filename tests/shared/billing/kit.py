"""Billing test helpers: a plan of one's own, and two writers racing at a limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID, uuid4

from shared.db import Connection
from shared.runtime import Runtime


async def put_on_plan(
    db: Connection,
    org: UUID,
    *,
    limits: dict[str, int] | None = None,
    features: tuple[str, ...] = ("api", "bots", "campaigns", "sla", "imports"),
    status: str = "active",
    price: str | None = None,
) -> str:
    """A fresh plan with these limits and features, and `org` subscribed to it."""
    code = f"t_{uuid4().hex[:12]}"
    await db.execute(
        "insert into public.plans (code, name, limits, features, stripe_price_ids)"
        " values ($1, 'Test plan', $2, $3, $4)",
        code,
        limits or {},
        list(features),
        [price] if price else [],
    )
    await db.execute(
        "update public.subscriptions set plan_code = $2, status = $3 where organization_id = $1",
        org,
        code,
        status,
    )
    return code


async def as_user(conn: Connection, user: UUID) -> None:
    """What PostgREST does for a signed-in user's request, inside the open transaction."""
    await conn.execute(
        "select set_config('role', 'authenticated', true),"
        " set_config('request.jwt.claims', $1, true)",
        json.dumps({"sub": str(user), "role": "authenticated"}),
    )


async def race(
    runtime: Runtime,
    db: Connection,
    user: UUID,
    write: Callable[[Connection], Awaitable[Any]],
    second: Callable[[], Awaitable[Any]] | None = None,
) -> Any:
    """Two writers at limit-1: the first writes and holds its transaction open while the
    second (by default the same write, as `user` through SQL) starts and must wait; the
    first commits. Returns what the second got: its result or its exception."""
    async with runtime.db.pool.acquire() as first, runtime.db.pool.acquire() as other:

        async def default_second() -> Any:
            async with other.transaction():
                await as_user(other, user)
                return await write(other)

        tx = first.transaction()
        await tx.start()
        await as_user(first, user)
        await write(first)
        task = asyncio.ensure_future((second or default_second)())
        try:
            await blocked_on_the_limit(db, exclude=first.get_server_pid())
        finally:
            await tx.commit()
        try:
            return await task
        except Exception as exc:  # the refusal is the answer
            return exc


async def blocked_on_the_limit(db: Connection, *, exclude: int) -> None:
    """Waits until a backend other than the first writer's waits for the limit's lock."""
    for _ in range(400):
        if await db.fetchval(
            "select exists (select 1 from pg_stat_activity where wait_event_type = 'Lock'"
            " and wait_event = 'advisory' and pid <> $1)",
            exclude,
        ):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("no writer waited for the limit's lock")
