"""/functions/v1/channel-accounts — connect, list, change and disable channel accounts.

POST   /          {organization_id, channel, name, setup: {...}}   admin+
GET    /?organization_id=…                                        any member
PATCH  /{id}      {name?, settings?, status?}                     admin+
DELETE /{id}      disables the account (and unregisters its webhook) admin+

Answers carry the account's webhook URL, never a secret.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter
from pydantic import BaseModel, Field, ValidationError

from shared import members
from shared.channels.answers import ProviderError
from shared.channels.http import ProviderClient
from shared.channels.registry import CHANNELS, channel_named
from shared.errors import Unprocessable
from shared.inbox import accounts
from shared.runtime import Runtime
from shared.web import CurrentUser, RuntimeDep, function_app

router = APIRouter()


class NewAccount(BaseModel):
    organization_id: UUID
    channel: str
    name: str = Field(min_length=1, max_length=120)
    setup: dict[str, Any]


class AccountChange(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    settings: dict[str, Any] | None = None
    status: Literal["active", "disabled"] | None = None


def _public(runtime: Runtime, row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "webhook_url": accounts.webhook_url(runtime.settings, row["channel"], row["id"])}


@router.post("/", status_code=201)
async def connect(body: NewAccount, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    if body.channel not in CHANNELS:
        raise Unprocessable(
            f"Unknown channel {body.channel!r}", details={"channel": sorted(CHANNELS)}
        )
    channel = channel_named(body.channel)
    try:
        setup = channel.Setup.model_validate(body.setup)
    except ValidationError as exc:
        raise Unprocessable(
            "The channel setup is invalid", details=exc.errors(include_url=False)
        ) from exc
    async with runtime.db.user_tx(user) as conn:  # rights first: no provider call for nothing
        await members.require_role(
            conn=conn, organization_id=body.organization_id, at_least="admin"
        )
    account_id = uuid4()
    client = ProviderClient(runtime.http, runtime.settings)
    try:
        connected = await channel.connect(
            client,
            setup=setup,
            webhook_url=accounts.webhook_url(runtime.settings, body.channel, account_id),
        )
    except ProviderError as exc:
        raise Unprocessable(f"The provider refused the setup: {exc.message}") from exc
    async with runtime.db.user_tx(user) as conn:
        row = await accounts.create_account(
            conn=conn,
            account_id=account_id,
            organization_id=body.organization_id,
            channel=body.channel,
            name=body.name,
            connected=connected,
        )
    return _public(runtime, row)


@router.get("/")
async def list_accounts(
    organization_id: UUID, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        rows = await accounts.list_accounts(conn=conn, organization_id=organization_id)
    return {"data": [_public(runtime, r) for r in rows]}


@router.patch("/{account_id}")
async def change(
    account_id: UUID, body: AccountChange, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        row = await accounts.update_account(
            conn=conn, account_id=account_id, changes=body.model_dump(exclude_none=True)
        )
    return _public(runtime, row)


@router.delete("/{account_id}")
async def disable(account_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        row = await accounts.update_account(
            conn=conn, account_id=account_id, changes={"status": "disabled"}
        )
    async with runtime.db.service_tx() as conn:
        account = await accounts.load_account(conn=conn, account_id=account_id)
    # Disabled on our side either way: sending stops. Messages that still arrive
    # are kept, never dropped.
    with contextlib.suppress(ProviderError):
        await channel_named(account.channel).disconnect(
            ProviderClient(runtime.http, runtime.settings), account
        )
    return _public(runtime, row)


app = function_app(router, name="channel-accounts")
