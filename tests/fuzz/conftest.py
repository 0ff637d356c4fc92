"""One database and one served gateway per fuzz module, not per example.

Schemathesis calls the ASGI app in-process on an event loop thread of its own, so
the gateway opens its own Runtime there (its lifespan); the organization, its
members and keys are made beforehand on a loop of the fixture's. The providers
the functions may call answer as they do for wrong credentials (their documented
error bodies), so no request leaves the machine.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

import pytest
import respx
from schemathesis.python import asgi

from shared.auth import local_jwks
from shared.runtime import Runtime
from shared.settings import Settings
from shared.tooling.cluster import Cluster
from shared.tooling.gateway import Gateway
from tests.channels.kits import KITS
from tests.fixtures import load
from tests.support import auth, issue_key, make_org, make_user


@dataclass
class World:
    settings: Settings
    gateway: Gateway
    org: UUID
    owner: UUID
    api_key: str
    user_headers: dict[str, str]
    accounts: dict[str, UUID]  # channel → a connected account's id


async def _arrange(settings: Settings) -> tuple[UUID, UUID, str, dict[str, UUID]]:
    runtime = await Runtime.open(settings)
    try:
        async with runtime.db.pool.acquire() as db:
            owner = await make_user(db)
            org = await make_org(db, owner)
            accounts = {name: (await kit.create_account(db, org)).id for name, kit in KITS.items()}
        key, _ = await issue_key(runtime, org, owner, ["read", "write"])
    finally:
        await runtime.close()
    return owner, org, key, accounts


def refusing_providers(router: respx.MockRouter, settings: Settings) -> None:
    """Every provider refuses the credentials, as its API documents it; the local
    Auth publishes its signing keys (what the gateway serves at that URL)."""
    router.get(settings.jwks_endpoint).respond(200, json=local_jwks(settings))
    for base, status, body in (
        *(refusal for kit in KITS.values() for refusal in kit.refusals()),
        (settings.supabase_url, 422, load("supabase_auth", "email_exists")),
    ):
        router.route(url__startswith=base.rstrip("/")).respond(status, json=body)


@pytest.fixture(scope="module")
def world(pg_cluster: Cluster, database_factory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    name = database_factory.take()
    settings = Settings(
        mode="local",
        database_url=pg_cluster.url(name),
        db_pool_min=1,
        db_pool_max=3,
        public_base_url="https://connectgain.example",
        provider_attempts=1,
        _env_file=None,  # type: ignore[call-arg]
    )
    owner, org, key, accounts = asyncio.run(_arrange(settings))
    gateway = Gateway(settings)  # its lifespan opens the Runtime on schemathesis' loop
    thresholds = gc.get_threshold()  # the lifespan prepares the heap for serving
    with respx.mock(assert_all_called=False) as router:
        refusing_providers(router, settings)
        try:
            yield World(
                settings=settings,
                gateway=gateway,
                org=org,
                owner=owner,
                api_key=key,
                user_headers=auth(settings, owner),
                accounts=accounts,
            )
        finally:
            asgi.shutdown_lifespans()  # closes the gateway's Runtime
            gc.unfreeze()  # as other tests expect the process
            gc.set_threshold(*thresholds)
            database_factory.used.put(name)
