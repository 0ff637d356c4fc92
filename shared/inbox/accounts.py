"""Channel accounts: loading one with its secrets (server-side only), and managing them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from shared.channels.base import Account, Connected
from shared.db import Connection, fetch_found
from shared.errors import Forbidden, NotFound
from shared.settings import Settings

# Never the secrets: those stay in private.channel_credentials.
PUBLIC_COLUMNS = (
    "id, organization_id, channel::text as channel, name, external_id, settings, status,"
    " created_at, updated_at"
)


def webhook_slug(channel: str) -> str:
    """The function a channel's webhooks are served by (shared/webhooks.py)."""
    return f"{channel}-webhook"


def webhook_url(settings: Settings, channel: str, account_id: UUID) -> str:
    return f"{settings.functions_url(webhook_slug(channel))}/{account_id}"


def _account(row: Any) -> Account:
    return Account(
        id=row["id"],
        organization_id=row["organization_id"],
        channel=row["channel"],
        name=row["name"],
        external_id=row["external_id"],
        settings=row["settings"],
        status=row["status"],
        secrets=row["secrets"] or {},
    )


@dataclass(frozen=True)
class Versioned:
    """An account as read, and its version: app.receive_inbound_deliveries refuses a
    delivery verified with an account that has changed since (CG409 account_changed)."""

    account: Account
    version: str


async def load_versioned(*, conn: Connection, account_ids: list[UUID]) -> dict[UUID, Versioned]:
    """Accounts with their secrets and version, in a service transaction."""
    rows = await conn.fetch(
        f"select {PUBLIC_COLUMNS}, c.secrets,"
        # the version app.receive_inbound_deliveries compares (its comment says why)
        " a.xmin::text || '/' || coalesce(c.xmin::text, '') as version"
        " from public.channel_accounts a"
        " left join private.channel_credentials c on c.channel_account_id = a.id"
        " where a.id = any($1)",
        account_ids,
    )
    return {row["id"]: Versioned(_account(row), row["version"]) for row in rows}


async def load_accounts(*, conn: Connection, account_ids: list[UUID]) -> dict[UUID, Account]:
    """Accounts with their secrets, in a service transaction."""
    found = await load_versioned(conn=conn, account_ids=account_ids)
    return {account_id: read.account for account_id, read in found.items()}


def found(account: Account | None, channel: str | None = None) -> Account:
    """The account loaded, if it is one of `channel`; the same 404 for none and another."""
    if account is None or (channel is not None and account.channel != channel):
        raise NotFound("No such channel account")
    return account


async def load_account(
    *, conn: Connection, account_id: UUID, channel: str | None = None
) -> Account:
    return found(
        (await load_accounts(conn=conn, account_ids=[account_id])).get(account_id), channel
    )


async def create_account(
    *,
    conn: Connection,
    account_id: UUID,
    organization_id: UUID,
    channel: str,
    name: str,
    connected: Connected,
) -> dict[str, Any]:
    """Insert under the caller's RLS (admins only) and store the secrets beside it."""
    row = await conn.fetchrow(
        "insert into public.channel_accounts"
        " (id, organization_id, channel, name, external_id, settings)"
        f" values ($1, $2, $3, $4, $5, $6) returning {PUBLIC_COLUMNS}",
        account_id,
        organization_id,
        channel,
        name,
        connected.external_id,
        connected.settings,
    )
    await conn.execute("select app.set_channel_credentials($1, $2)", account_id, connected.secrets)
    return dict(row) if row else {}


async def list_accounts(*, conn: Connection, organization_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"select {PUBLIC_COLUMNS} from public.channel_accounts"
        " where organization_id = $1 order by created_at",
        organization_id,
    )
    return [dict(r) for r in rows]


async def get_account(*, conn: Connection, account_id: UUID) -> dict[str, Any]:
    return await fetch_found(
        conn,
        "No such channel account",
        f"select {PUBLIC_COLUMNS} from public.channel_accounts where id = $1",
        account_id,
    )


async def update_account(
    *, conn: Connection, account_id: UUID, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change name, settings or status (admins only: the policy returns nothing otherwise)."""
    current = await get_account(conn=conn, account_id=account_id)
    row = await conn.fetchrow(
        "update public.channel_accounts set name = $2, settings = settings || $3, status = $4"
        f" where id = $1 returning {PUBLIC_COLUMNS}",
        account_id,
        changes.get("name", current["name"]),
        changes.get("settings", {}),
        changes.get("status", current["status"]),
    )
    if row is None:
        raise Forbidden("Only admins and owners can change channel accounts")
    return dict(row)
