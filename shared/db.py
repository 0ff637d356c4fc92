"""The asyncpg pool and the two kinds of transaction every function uses.

`user_tx(principal)` does per transaction what PostgREST does per request:
switch to the principal's role and publish its JWT claims, so the very same
RLS policies that guard the SPA guard the functions. For an API key it also
records the key against the transaction's id (private.api_key_transactions, as
the owner, before the role switch), which no API role can write: that, not a
setting a session could forge, is what app.api_key_id() reads. `service_tx()` runs as
the connecting (owner) role and bypasses RLS; every statement in it must
filter by an organization id that came from a verified source.

Both set their settings with `set_config(..., true)` (transaction-local), so
they are safe behind Supabase's transaction pooler, where the pool also turns
off prepared-statement caching (see Settings.statement_cache_size).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.auth import ApiKeyPrincipal, Principal
from shared.errors import NotFound
from shared.settings import Settings

# What a transaction hands out: a pooled connection (or a plain one in tooling).
Connection = asyncpg.Connection | PoolConnectionProxy


async def fetch_found(conn: Connection, missing: str, sql: str, *args: Any) -> dict[str, Any]:
    """The one row `sql` returns, as a dict; NotFound(missing) when there is none, which
    under RLS is also a row of another organization."""
    row = await conn.fetchrow(sql, *args)
    if row is None:
        raise NotFound(missing)
    return dict(row)


class _Connection(asyncpg.Connection):
    def get_reset_query(self) -> str:
        # asyncpg resets every connection it takes back (RESET ALL, UNLISTEN …), one
        # round trip per request. Our sessions carry no state to reset: every
        # setting is transaction-local (set_config(..., true)) and locks are
        # transaction locks, so the reset is skipped.
        return ""


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


_BEGIN_AS = "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)"
_BEGIN_AS_KEY = (
    "select private.bind_api_key($3),"
    " set_config('role', $1, true), set_config('request.jwt.claims', $2, true)"
)


def _role_and_claims(principal: Principal) -> tuple[str, str]:
    return principal.db_role, json.dumps(principal.claims)


class Database:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, settings: Settings) -> Database:
        pool = await asyncpg.create_pool(
            settings.database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            statement_cache_size=settings.statement_cache_size,
            init=_init_connection,
            connection_class=_Connection,
            server_settings={"application_name": "connectgain"},
        )
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def user_tx(self, principal: Principal) -> AsyncIterator[Connection]:
        """A transaction under RLS, as `principal` (what PostgREST does per request).

        An API key is bound to the transaction by the owner (private.bind_api_key,
        security definer, so it runs as the owner whatever the evaluation order) in
        the statement that switches role: no setting a client could forge is trusted.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            if isinstance(principal, ApiKeyPrincipal):
                await conn.execute(_BEGIN_AS_KEY, *_role_and_claims(principal), principal.key_id)
            else:
                await conn.execute(_BEGIN_AS, *_role_and_claims(principal))
            yield conn

    @asynccontextmanager
    async def service_tx(self) -> AsyncIterator[Connection]:
        """A transaction as the owner role, past RLS: webhooks, cron, admin paths."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def service_conn(self) -> AsyncIterator[Connection]:
        """A connection as the owner where each statement is its own transaction: for a
        hot path whose work is one statement, it saves BEGIN and COMMIT round trips."""
        async with self.pool.acquire() as conn:
            yield conn

    async def ping(self) -> bool:
        try:
            async with self.pool.acquire(timeout=2) as conn:
                return bool(await conn.fetchval("select true"))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False
