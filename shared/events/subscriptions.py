"""Webhook endpoints of an organization, under its admins' RLS.

The row is public.webhook_endpoints (admins only, by policy); its signing secret
is kept in private.webhook_secrets through app.set_webhook_secret, returned only
by `create` and `rotate`, and never selected anywhere else.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from shared.db import Connection
from shared.errors import NotFound
from shared.events import signing

COLUMNS = (
    "id, organization_id, url, events, description, enabled, disabled_reason, failing_since,"
    " last_success_at, last_failure_at, created_at, updated_at"
)
ATTEMPT_COLUMNS = (
    "id, delivery_id, attempt, attempted_at, status_code, latency_ms, error, response_excerpt"
)


def _shown(row: Any) -> dict[str, Any]:
    shown = dict(row)
    shown["status"] = (
        "disabled" if not shown["enabled"] else "failing" if shown["failing_since"] else "active"
    )
    return shown


async def create(
    *,
    conn: Connection,
    organization_id: UUID,
    url: str,
    events: list[str],
    description: str | None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        "insert into public.webhook_endpoints (organization_id, url, events, description)"
        f" values ($1, $2, $3, $4) returning {COLUMNS}",
        organization_id,
        url,
        events,
        description,
    )
    assert row is not None
    secret = signing.new_secret()
    await conn.execute("select app.set_webhook_secret($1, $2, '0 s')", row["id"], secret)
    return {**_shown(row), "secret": secret}


async def list_endpoints(*, conn: Connection, organization_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"select {COLUMNS} from public.webhook_endpoints where organization_id = $1"
        " order by created_at desc, id",
        organization_id,
    )
    return [_shown(r) for r in rows]


async def get(*, conn: Connection, endpoint_id: UUID) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"select {COLUMNS} from public.webhook_endpoints where id = $1", endpoint_id
    )
    if row is None:
        raise NotFound("No such webhook endpoint")
    return _shown(row)


async def update(*, conn: Connection, endpoint_id: UUID, changes: dict[str, Any]) -> dict[str, Any]:
    """url, events, description, enabled: whichever are given. Enabling clears the
    failing streak; disabling by hand says so."""
    await get(conn=conn, endpoint_id=endpoint_id)
    row = await conn.fetchrow(
        f"""
        update public.webhook_endpoints
           set url = coalesce($2, url), events = coalesce($3, events),
               description = case when $4 then $5 else description end,
               enabled = coalesce($6, enabled),
               disabled_reason = case when $6 then null
                                      when not $6 and enabled
                                      then coalesce($7, 'disabled by an admin')
                                      else disabled_reason end,
               failing_since = case when $6 and not enabled then null else failing_since end
         where id = $1
        returning {COLUMNS}
        """,
        endpoint_id,
        changes.get("url"),
        changes.get("events"),
        "description" in changes,
        changes.get("description"),
        changes.get("enabled"),
        changes.get("disabled_reason"),
    )
    if row is None:
        raise NotFound("No such webhook endpoint")
    return _shown(row)


async def delete(*, conn: Connection, endpoint_id: UUID) -> None:
    deleted = await conn.fetchval(
        "delete from public.webhook_endpoints where id = $1 returning id", endpoint_id
    )
    if deleted is None:
        raise NotFound("No such webhook endpoint")


async def rotate(*, conn: Connection, endpoint_id: UUID, overlap: timedelta) -> dict[str, Any]:
    """A new secret; the previous one keeps signing for `overlap`."""
    shown = await get(conn=conn, endpoint_id=endpoint_id)
    secret = signing.new_secret()
    await conn.execute("select app.set_webhook_secret($1, $2, $3)", endpoint_id, secret, overlap)
    return {**shown, "secret": secret, "previous_secret_valid_for_seconds": overlap.total_seconds()}


async def attempts(
    *, conn: Connection, endpoint_id: UUID, before: int | None, limit: int
) -> list[dict[str, Any]]:
    endpoint = await get(conn=conn, endpoint_id=endpoint_id)
    rows = await conn.fetch(
        f"select {ATTEMPT_COLUMNS} from public.webhook_attempts"
        " where organization_id = $1 and endpoint_id = $2 and ($3::bigint is null or id < $3)"
        " order by id desc limit $4",
        endpoint["organization_id"],
        endpoint_id,
        before,
        limit,
    )
    return [dict(r) for r in rows]
