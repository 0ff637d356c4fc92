"""Plan limits, enforced by the database on every write path, atomically.

Each limit is raced: two writers at limit-1, the second waiting on the first's
lock; exactly one gets in, the other is refused with SQLSTATE PT402 (PostgREST's
402) naming the limit, its value and the usage. Writes run as PostgREST runs them
(role authenticated, the user's claims).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
import pytest_asyncio

from shared.db import Connection
from shared.runtime import Runtime
from tests.shared.billing.kit import as_user, put_on_plan, race
from tests.support import (
    make_channel_account,
    make_contact,
    make_org,
    make_user,
    module_runtime_fixtures,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
runtime, db = module_runtime_fixtures()


@pytest_asyncio.fixture(loop_scope="module")
async def owner_org(db: Connection) -> tuple[UUID, UUID]:
    owner = await make_user(db)
    return owner, await make_org(db, owner)


def _member(org: UUID, users: list[UUID]) -> Callable[[Connection], Awaitable[Any]]:
    spare = iter(users)

    async def write(conn: Connection) -> Any:
        return await conn.execute(
            "insert into public.organization_members (organization_id, user_id) values ($1, $2)",
            org,
            next(spare),
        )

    return write


def _insert(sql: str, org: UUID) -> Callable[[Connection], Awaitable[Any]]:
    async def write(conn: Connection) -> Any:
        return await conn.execute(sql, org, uuid4().hex)

    return write


LIMITED: dict[str, str] = {
    "channel_accounts": "insert into public.channel_accounts (organization_id, channel, name,"
    " external_id) values ($1, 'telegram', 'bot', $2)",
    "contacts": "insert into public.contacts (organization_id, name) values ($1, $2)",
    "automation_rules": "insert into public.automation_rules (organization_id, name, position,"
    """ trigger, actions) values ($1, $2, 0, 'contact.created', '[{"type": "stop"}]')""",
    "api_keys": "select app.create_api_key($1, 'k', '{read}', 'cg_x', decode(md5($2), 'hex'))",
    "bot_flows": "insert into public.bot_flows (organization_id, name, draft)"
    " values ($1, $2, '{}')",
}


async def _usage(db: Connection, table: str, org: UUID) -> int:
    count: int = await db.fetchval(
        f"select count(*) from public.{table} where organization_id = $1", org
    )
    return count


def _refused(outcome: Any, limit: str, value: int, usage: int) -> None:
    assert isinstance(outcome, asyncpg.PostgresError), f"the second write went through: {outcome}"
    assert outcome.sqlstate == "PT402"  # PostgREST answers PTxyz with HTTP xyz: 402
    detail = json.loads(outcome.detail)
    assert detail == {
        "code": "plan_limit",
        "limit": limit,
        "value": value,
        "usage": usage,
        "plan": detail["plan"],
    }
    assert str(outcome).startswith("plan_limit:")


@pytest.mark.parametrize("metric", sorted(LIMITED))
async def test_two_writers_at_the_limit_one_gets_in(
    metric: str, runtime: Runtime, db: Connection, owner_org: tuple[UUID, UUID]
):
    owner, org = owner_org
    async with db.transaction():  # one already there
        await as_user(db, owner)
        await _insert(LIMITED[metric], org)(db)
    await put_on_plan(db, org, limits={metric: 2})
    outcome = await race(runtime, db, owner, _insert(LIMITED[metric], org))
    _refused(outcome, metric, 2, 2)
    assert await _usage(db, metric, org) == 2


async def test_seats(runtime: Runtime, db: Connection, owner_org: tuple[UUID, UUID]):
    owner, org = owner_org
    users = [await make_user(db) for _ in range(2)]
    await put_on_plan(db, org, limits={"seats": 2})  # the owner holds one
    outcome = await race(runtime, db, owner, _member(org, users))
    _refused(outcome, "seats", 2, 2)
    assert await _usage(db, "organization_members", org) == 2


async def test_active_campaigns_count_when_started(
    runtime: Runtime, db: Connection, owner_org: tuple[UUID, UUID]
):
    owner, org = owner_org
    account = await make_channel_account(db, org, "telegram")
    drafts = [
        await db.fetchval(
            "insert into public.campaigns (organization_id, channel_account_id, name, body)"
            " values ($1, $2, 'c', 'hi') returning id",
            org,
            account,
        )
        for _ in range(3)
    ]
    await db.execute("update public.campaigns set status = 'running' where id = $1", drafts[0])
    await put_on_plan(db, org, limits={"active_campaigns": 2})
    started = iter(drafts[1:])

    async def start(conn: Connection) -> Any:
        return await conn.execute(
            "update public.campaigns set status = 'scheduled' where id = $1", next(started)
        )

    _refused(await race(runtime, db, owner, start), "active_campaigns", 2, 2)
    # drafts are not active: any number may be written
    await db.execute(
        "insert into public.campaigns (organization_id, channel_account_id, name, body)"
        " values ($1, $2, 'more', 'hi')",
        org,
        account,
    )


async def test_data_over_a_limit_is_kept_and_only_new_rows_are_refused(
    db: Connection, owner_org: tuple[UUID, UUID]
):
    owner, org = owner_org
    contacts = [await make_contact(db, org) for _ in range(3)]
    await put_on_plan(db, org, limits={"contacts": 1})
    async with db.transaction():
        await as_user(db, owner)
        await db.execute("update public.contacts set name = 'edited' where id = $1", contacts[0])
        with pytest.raises(asyncpg.PostgresError) as refused:
            await db.execute("insert into public.contacts (organization_id) values ($1)", org)
    _refused(refused.value, "contacts", 1, 3)
    assert await _usage(db, "contacts", org) == 3


async def test_a_customer_writing_in_is_never_refused_but_counts(
    db: Connection, owner_org: tuple[UUID, UUID]
):
    _, org = owner_org
    await put_on_plan(db, org, limits={"contacts": 0})
    await make_contact(db, org)  # the service, storing an inbound message's sender
    assert await _usage(db, "contacts", org) == 1


@pytest.mark.parametrize(
    ("status", "grace", "limited"),
    [
        ("trialing", None, False),
        ("active", None, False),
        ("past_due", timedelta(days=1), False),  # within its grace period
        ("past_due", timedelta(days=-1), True),  # grace over: free limits
        ("unpaid", None, True),
        ("canceled", None, True),
        ("incomplete", None, True),
    ],
)
async def test_status_decides_whose_limits_apply(
    status: str,
    grace: timedelta | None,
    limited: bool,
    db: Connection,
    owner_org: tuple[UUID, UUID],
):
    owner, org = owner_org
    await put_on_plan(db, org, limits={}, status=status)  # the paid plan: unlimited
    if grace is not None:
        await db.execute(
            "update public.subscriptions set grace_until = $2 where organization_id = $1",
            org,
            datetime.now(UTC) + grace,
        )
    free_api_keys = await db.fetchval(
        "select (limits ->> 'api_keys')::int from public.plans where code = 'free'"
    )
    assert free_api_keys == 0
    async with db.transaction():
        await as_user(db, owner)
        try:
            await _insert(LIMITED["api_keys"], org)(db)
            refused = None
        except asyncpg.PostgresError as exc:
            refused = exc
    assert (refused is not None) == limited
    if refused is not None:
        assert json.loads(refused.detail)["plan"] == "free"


class Rollback(Exception):
    pass


async def test_a_new_organization_starts_on_the_plan_for_new_organizations(db: Connection):
    with pytest.raises(Rollback):
        async with db.transaction():  # the module's database keeps its unlimited default
            await db.execute("update public.plans set for_new_organizations = false")
            await db.execute(
                "update public.plans set for_new_organizations = true where code = 'free'"
            )
            org = await make_org(db, await make_user(db))
            row = await db.fetchrow(
                "select plan_code, status from public.subscriptions where organization_id = $1",
                org,
            )
            assert row is not None
            assert (row["plan_code"], row["status"]) == ("free", "active")
            raise Rollback


async def test_outbound_messages_are_counted_exactly_and_per_period(
    runtime: Runtime, db: Connection, owner_org: tuple[UUID, UUID]
):
    owner, org = owner_org
    conversation = await db.fetchval(
        "insert into public.conversations (organization_id, contact_id, channel_account_id)"
        " values ($1, $2, $3) returning id",
        org,
        await make_contact(db, org),
        await make_channel_account(db, org, "telegram"),
    )
    await put_on_plan(db, org, limits={"outbound_messages_per_period": 12})

    async def send() -> Any:
        try:
            async with runtime.db.pool.acquire() as conn, conn.transaction():
                await as_user(conn, owner)
                return await conn.execute(
                    "insert into public.messages (organization_id, conversation_id,"
                    " channel_account_id, direction, sender_type, sender_id, body, status)"
                    " select organization_id, id, channel_account_id, 'outbound', 'user', $2,"
                    " 'hi', 'queued' from public.conversations where id = $1",
                    conversation,
                    owner,
                )
        except asyncpg.PostgresError as exc:
            return exc

    outcomes = await asyncio.gather(*(send() for _ in range(15)))
    refused = [o for o in outcomes if isinstance(o, asyncpg.PostgresError)]
    assert len(refused) == 3
    assert {json.loads(r.detail)["usage"] for r in refused} == {12}
    counters = await db.fetch(
        "select period_start, count from public.usage_counters where organization_id = $1", org
    )
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert [(c["period_start"], c["count"]) for c in counters] == [(month, 12)]
    # a new billing period starts a new counter: the old one stays as history
    await db.execute(
        "update public.subscriptions set current_period_start = now() - interval '1 minute',"
        " current_period_end = now() + interval '30 days' where organization_id = $1",
        org,
    )
    assert not isinstance(await send(), asyncpg.PostgresError)
    counts = await db.fetchval(
        "select array_agg(count order by period_start) from public.usage_counters"
        " where organization_id = $1",
        org,
    )
    assert counts == [12, 1]


async def test_an_owner_cannot_choose_their_plan_or_usage_through_postgrest(
    db: Connection, owner_org: tuple[UUID, UUID]
):
    owner, org = owner_org
    async with db.transaction():
        await as_user(db, owner)
        assert (
            await db.fetchval(
                "select plan_code from public.subscriptions where organization_id = $1", org
            )
        ) == "enterprise"  # members read it
        changed = await db.fetch(
            "update public.subscriptions set plan_code = 'pro', status = 'active'"
            " where organization_id = $1 returning 1",
            org,
        )
        assert changed == []
        assert await db.fetch("update public.plans set limits = '{}' returning 1") == []
        assert await db.fetch("delete from public.usage_counters returning 1") == []
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await db.execute(
                "insert into public.usage_counters (organization_id, metric, period_start)"
                " values ($1, 'outbound_messages', now() - interval '1 year')",
                org,
            )
