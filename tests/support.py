"""Builders for tests: users, organizations, members, keys and the HTTP headers to act as them."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest_asyncio

from shared import api_keys
from shared.auth import ApiKeyPrincipal, Principal, UserPrincipal, mint_access_token
from shared.db import Connection
from shared.runtime import Runtime, tls_context
from shared.settings import Settings
from shared.tooling.gateway import Gateway

_numbers = itertools.count(1)


async def make_user(db: Connection, email: str | None = None, full_name: str | None = None) -> UUID:
    email = email or f"user{next(_numbers)}@example.com"
    meta = {"full_name": full_name} if full_name else {}
    user_id: UUID = await db.fetchval(
        "insert into auth.users (email, raw_user_meta_data) values ($1, $2) returning id",
        email,
        meta,
    )
    return user_id


def principal(user_id: UUID, email: str | None = None) -> UserPrincipal:
    return UserPrincipal(
        user_id=user_id, claims={"sub": str(user_id), "role": "authenticated", "email": email}
    )


async def make_org(db: Connection, owner: UUID, name: str | None = None) -> UUID:
    """An organization created the way the SPA does it: create_organization() as its owner."""
    async with db.transaction():
        await db.execute(
            "select set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', $1, true)",
            json.dumps({"sub": str(owner), "role": "authenticated"}),
        )
        org: UUID = await db.fetchval(
            "select public.create_organization($1)", name or f"Org {next(_numbers)}"
        )
    return org


async def add_member(db: Connection, org: UUID, user: UUID, role: str) -> None:
    await db.execute(
        "insert into public.organization_members (organization_id, user_id, role)"
        " values ($1, $2, $3)",
        org,
        user,
        role,
    )


async def member(db: Connection, org: UUID, role: str, email: str | None = None) -> UUID:
    user = await make_user(db, email)
    await add_member(db, org, user, role)
    return user


async def issue_key(
    runtime: Runtime, org: UUID, admin: UUID, scopes: list[api_keys.Scope]
) -> tuple[str, ApiKeyPrincipal]:
    """A real key issued through the domain code by an admin; returns it and its principal."""
    async with runtime.db.user_tx(principal(admin)) as conn:
        created = await api_keys.create_api_key(
            conn=conn, organization_id=org, name="test key", scopes=scopes
        )
    key: str = created["key"]
    return key, await api_keys.authenticate(runtime.db, key)


def auth(settings: Settings, user: UUID, email: str | None = None) -> dict[str, str]:
    token = mint_access_token(settings, user_id=user, email=email)
    return {"Authorization": f"Bearer {token}"}


async def make_channel_account(
    db: Connection, org: UUID, channel: str = "whatsapp", external_id: str | None = None
) -> UUID:
    account: UUID = await db.fetchval(
        "insert into public.channel_accounts (organization_id, channel, name, external_id)"
        " values ($1, $2, $3, $4) returning id",
        org,
        channel,
        f"{channel} account",
        external_id or f"ext-{next(_numbers)}",
    )
    return account


async def make_contact(db: Connection, org: UUID, **fields: object) -> UUID:
    values = {"name": f"Contact {next(_numbers)}", **fields}
    columns = ", ".join(["organization_id", *values])
    params = ", ".join(f"${i}" for i in range(1, len(values) + 2))
    contact: UUID = await db.fetchval(
        f"insert into public.contacts ({columns}) values ({params}) returning id",
        org,
        *values.values(),
    )
    return contact


async def make_conversation(
    db: Connection, org: UUID, *, contact: UUID | None = None, account: UUID | None = None
) -> UUID:
    contact = contact or await make_contact(db, org)
    account = account or await make_channel_account(db, org)
    conversation: UUID = await db.fetchval(
        "insert into public.conversations (organization_id, contact_id, channel_account_id)"
        " values ($1, $2, $3) returning id",
        org,
        contact,
        account,
    )
    return conversation


async def make_message(db: Connection, org: UUID, conversation: UUID | None = None) -> UUID:
    conversation = conversation or await make_conversation(db, org)
    message: UUID = await db.fetchval(
        "insert into public.messages (organization_id, conversation_id, channel_account_id,"
        " direction, sender_type, body, status, provider_message_id)"
        " select organization_id, id, channel_account_id, 'inbound', 'contact', 'hello',"
        " 'received', gen_random_uuid()::text from public.conversations where id = $1"
        " returning id",
        conversation,
    )
    return message


def settings_for(database_url: str) -> Settings:
    """The settings every test runs with, on its database."""
    return Settings(
        mode="local",
        database_url=database_url,
        db_pool_min=1,
        db_pool_max=5,
        public_base_url="https://connectgain.example",
        _env_file=None,  # type: ignore[call-arg]
    )


def module_runtime_fixtures(
    settings: Callable[[str], Settings] = settings_for,
) -> tuple[Any, Any]:
    """`runtime` and `db` fixtures of module scope, over the module's own database, for a
    module that builds its world once (`runtime, db = module_runtime_fixtures()`)."""

    @pytest_asyncio.fixture(scope="module", loop_scope="module", name="runtime")
    async def runtime(module_database_url: str) -> AsyncIterator[Runtime]:
        opened = await Runtime.open(settings(module_database_url))
        try:
            yield opened
        finally:
            await opened.close()

    @pytest_asyncio.fixture(scope="module", loop_scope="module", name="db")
    async def db(runtime: Runtime) -> AsyncIterator[Connection]:
        async with runtime.db.pool.acquire() as conn:
            yield conn

    return runtime, db


class LocalAuthNetwork(httpx.AsyncBaseTransport):
    """A runtime's network as under `connectgain dev`: the local Auth's JWKS URL is
    answered by the gateway (in process), everything else goes out (or to respx).

    So the tokens `auth()` mints (ES256) are verified as a project's are: the
    JWKS fetched over the runtime's HTTP client, cached, and the token checked."""

    def __init__(self, settings: Settings) -> None:
        self.jwks_url = settings.jwks_endpoint
        self.gateway = httpx.ASGITransport(app=Gateway(settings))
        self.network = httpx.AsyncHTTPTransport(verify=tls_context())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == self.jwks_url:
            return await self.gateway.handle_async_request(request)
        return await self.network.handle_async_request(request)

    async def aclose(self) -> None:
        await self.network.aclose()


async def as_(runtime: Runtime, who: Principal, sql: str, *args: Any) -> list[asyncpg.Record]:
    """`sql` in a transaction as `who`, as PostgREST would run it."""
    async with runtime.db.user_tx(who) as conn:
        return await conn.fetch(sql, *args)
