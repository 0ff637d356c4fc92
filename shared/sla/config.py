"""Business hours and SLA policies: an organization's SLA configuration.

Runs under the caller's RLS (managers and write keys write, members read); every
statement also names the organization. A channel account named must be one of
the organization's, checked first so the refusal names it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel

from shared.db import Connection
from shared.errors import Conflict, NotFound, Unprocessable
from shared.sla.inputs import (
    BusinessHoursCreate,
    BusinessHoursUpdate,
    PolicyCreate,
    PolicyUpdate,
)

HOURS, POLICY = "business hours", "SLA policy"  # as refusals name them
HOURS_COLUMNS = (
    "id, organization_id, channel_account_id, name, timezone, weekly, holidays,"
    " created_at, updated_at"
)
POLICY_COLUMNS = (
    "id, organization_id, name, first_response_seconds, next_response_seconds,"
    " resolution_seconds, business_hours_only, is_default, channel_account_id,"
    " created_at, updated_at"
)


def _invalid(field: str, message: str) -> Unprocessable:
    return Unprocessable(f"{field}: {message}", details=[{"field": field, "message": message}])


async def _check_account(conn: Connection, organization_id: UUID, account: UUID | None) -> None:
    if account is None:
        return
    found = await conn.fetchval(
        "select true from public.channel_accounts where organization_id = $1 and id = $2",
        organization_id,
        account,
    )
    if not found:
        raise _invalid("channel_account_id", f"no channel account {account} in this organization")


def _values(data: BaseModel, only_set: bool) -> dict[str, Any]:
    dumped = data.model_dump(mode="json", exclude_unset=only_set)
    if "channel_account_id" in dumped and dumped["channel_account_id"] is not None:
        dumped["channel_account_id"] = UUID(dumped["channel_account_id"])
    return dumped


async def _insert(conn: Connection, table: str, columns: str, values: dict[str, Any]) -> Any:
    names = list(values)
    params = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    return await conn.fetchrow(
        f"insert into public.{table} ({', '.join(names)}) values ({params}) returning {columns}",
        *values.values(),
    )


async def _update(
    conn: Connection,
    table: str,
    columns: str,
    organization_id: UUID,
    record_id: UUID,
    values: dict[str, Any],
) -> Any:
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(values, start=3))
    if not sets:
        sets = "id = id"
    return await conn.fetchrow(
        f"update public.{table} set {sets} where organization_id = $1 and id = $2"
        f" returning {columns}",
        organization_id,
        record_id,
        *values.values(),
    )


async def _list(
    conn: Connection, table: str, columns: str, organization_id: UUID, order: str
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"select {columns} from public.{table} where organization_id = $1"
        f" order by {order} limit 1000",
        organization_id,
    )
    return [dict(r) for r in rows]


async def _get(
    conn: Connection, table: str, columns: str, organization_id: UUID, record_id: UUID, what: str
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"select {columns} from public.{table} where organization_id = $1 and id = $2",
        organization_id,
        record_id,
    )
    if row is None:
        raise NotFound(f"No such {what}")
    return dict(row)


async def _delete(
    conn: Connection, table: str, organization_id: UUID, record_id: UUID, what: str
) -> None:
    deleted = await conn.fetchval(
        f"delete from public.{table} where organization_id = $1 and id = $2 returning id",
        organization_id,
        record_id,
    )
    if deleted is None:
        raise NotFound(f"No such {what}")


# ---- business hours -------------------------------------------------------------------------


async def list_business_hours(*, conn: Connection, organization_id: UUID) -> list[dict[str, Any]]:
    order = "channel_account_id nulls first, created_at"
    return await _list(conn, "business_hours", HOURS_COLUMNS, organization_id, order)


async def get_business_hours(
    *, conn: Connection, organization_id: UUID, business_hours_id: UUID
) -> dict[str, Any]:
    return await _get(
        conn, "business_hours", HOURS_COLUMNS, organization_id, business_hours_id, HOURS
    )


async def create_business_hours(
    *, conn: Connection, organization_id: UUID, data: BusinessHoursCreate
) -> dict[str, Any]:
    await _check_account(conn, organization_id, data.channel_account_id)
    taken = await conn.fetchval(
        "select true from public.business_hours where organization_id = $1"
        " and channel_account_id is not distinct from $2",
        organization_id,
        data.channel_account_id,
    )
    if taken:
        whose = "this channel account" if data.channel_account_id else "the organization"
        raise Conflict(f"{whose} has business hours already; change them instead")
    row = await _insert(
        conn,
        "business_hours",
        HOURS_COLUMNS,
        {"organization_id": organization_id, **_values(data, only_set=False)},
    )
    return dict(row)


async def update_business_hours(
    *, conn: Connection, organization_id: UUID, business_hours_id: UUID, data: BusinessHoursUpdate
) -> dict[str, Any]:
    values = {k: v for k, v in _values(data, only_set=True).items() if v is not None}
    row = await _update(
        conn, "business_hours", HOURS_COLUMNS, organization_id, business_hours_id, values
    )
    if row is None:
        raise NotFound(f"No such {HOURS}")
    return dict(row)


async def delete_business_hours(
    *, conn: Connection, organization_id: UUID, business_hours_id: UUID
) -> None:
    await _delete(conn, "business_hours", organization_id, business_hours_id, HOURS)


# ---- SLA policies ---------------------------------------------------------------------------


async def list_policies(*, conn: Connection, organization_id: UUID) -> list[dict[str, Any]]:
    return await _list(conn, "sla_policies", POLICY_COLUMNS, organization_id, "created_at, id")


async def get_policy(*, conn: Connection, organization_id: UUID, policy_id: UUID) -> dict[str, Any]:
    return await _get(conn, "sla_policies", POLICY_COLUMNS, organization_id, policy_id, POLICY)


async def _check_default(
    conn: Connection, organization_id: UUID, values: dict[str, Any], policy_id: UUID | None
) -> None:
    if values.get("channel_account_id") is not None and not values.get("is_default"):
        raise _invalid("channel_account_id", "only a default policy names a channel account")
    await _check_account(conn, organization_id, values.get("channel_account_id"))
    if not values.get("is_default"):
        return
    other = await conn.fetchval(
        "select id from public.sla_policies where organization_id = $1 and is_default"
        " and channel_account_id is not distinct from $2 and id is distinct from $3",
        organization_id,
        values.get("channel_account_id"),
        policy_id,
    )
    if other is not None:
        whose = "this channel account" if values.get("channel_account_id") else "the organization"
        raise Conflict(f"{whose} has a default SLA policy already ({other})")


async def create_policy(
    *, conn: Connection, organization_id: UUID, data: PolicyCreate
) -> dict[str, Any]:
    values = _values(data, only_set=False)
    await _check_default(conn, organization_id, values, None)
    row = await _insert(
        conn, "sla_policies", POLICY_COLUMNS, {"organization_id": organization_id, **values}
    )
    return dict(row)


async def update_policy(
    *, conn: Connection, organization_id: UUID, policy_id: UUID, data: PolicyUpdate
) -> dict[str, Any]:
    current = await get_policy(conn=conn, organization_id=organization_id, policy_id=policy_id)
    changes = _values(data, only_set=True)
    if changes.get("is_default") is False:
        changes.setdefault("channel_account_id", None)
    if "name" in changes and changes["name"] is None:
        raise _invalid("name", "cannot be null")
    for flag in ("business_hours_only", "is_default"):
        if flag in changes and changes[flag] is None:
            raise _invalid(flag, "cannot be null")
    merged = {**current, **changes}
    if {"is_default", "channel_account_id"} & set(changes):
        await _check_default(conn, organization_id, merged, policy_id)
    row = await _update(conn, "sla_policies", POLICY_COLUMNS, organization_id, policy_id, changes)
    if row is None:
        raise NotFound(f"No such {POLICY}")
    return dict(row)


async def delete_policy(*, conn: Connection, organization_id: UUID, policy_id: UUID) -> None:
    """Conversations under it keep their clocks; new clocks follow the defaults."""
    await _delete(conn, "sla_policies", organization_id, policy_id, POLICY)
