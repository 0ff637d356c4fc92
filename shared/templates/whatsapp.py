"""WhatsApp templates in the database: synced from Meta, submitted for approval,
and looked up for a send. Writes run under the caller's RLS (managers and above)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel

from shared.auth import Principal
from shared.channels.answers import ProviderError
from shared.channels.base import Account
from shared.channels.http import ProviderClient
from shared.channels.whatsapp import templates as graph
from shared.db import Connection
from shared.errors import (
    AppError,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
    UpstreamError,
)
from shared.inbox.accounts import load_account
from shared.runtime import Runtime


class SyncRequest(BaseModel):
    channel_account_id: UUID


class Submission(BaseModel):
    channel_account_id: UUID
    template: graph.NewTemplate


COLUMNS = (
    "id, organization_id, channel_account_id, provider_template_id, name, language, category,"
    " status, parameter_format, components, status_reason, synced_at, created_at, updated_at"
)


def _whatsapp(account: Account) -> None:
    if account.channel != "whatsapp":
        raise Unprocessable(
            f"Templates are WhatsApp's: this is a {account.channel} account",
            code="not_whatsapp",
        )


async def fetch(client: ProviderClient, account: Account) -> list[graph.GraphTemplate]:
    """The account's templates as Meta holds them (the provider call, outside any tx)."""
    _whatsapp(account)
    return await graph.list_templates(client, account)


async def store_synced(
    *, conn: Connection, account: Account, templates: list[graph.GraphTemplate]
) -> dict[str, int]:
    """Upsert what Graph listed, in one statement; a template Meta no longer lists is gone."""
    rows = [
        {
            "provider_template_id": t.id,
            "name": t.name,
            "language": t.language,
            "category": t.category,
            "status": t.status,
            "parameter_format": t.parameter_format,
            "components": t.components,
            "status_reason": None if t.rejected_reason in (None, "NONE") else t.rejected_reason,
        }
        for t in templates
    ]
    result = await conn.fetchrow(
        """
        with listed as (
          select * from jsonb_to_recordset($3::jsonb) as x(
            provider_template_id text, name text, language text, category text, status text,
            parameter_format text, components jsonb, status_reason text)
        ), gone as (
          delete from public.whatsapp_templates t
           where t.organization_id = $1 and t.channel_account_id = $2
             and not exists (select 1 from listed l
                              where l.name = t.name and l.language = t.language)
          returning 1
        ), upserted as (
          insert into public.whatsapp_templates as t
            (organization_id, channel_account_id, provider_template_id, name, language,
             category, status, parameter_format, components, status_reason, synced_at)
          select $1, $2, provider_template_id, name, language, category, status,
                 parameter_format, components, status_reason, now()
            from listed
          on conflict (channel_account_id, name, language) do update
            set provider_template_id = excluded.provider_template_id,
                category = excluded.category, status = excluded.status,
                parameter_format = excluded.parameter_format,
                components = excluded.components, status_reason = excluded.status_reason,
                synced_at = now(), updated_at = now()
          returning 1
        )
        select (select count(*) from upserted) as synced, (select count(*) from gone) as removed
        """,
        account.organization_id,
        account.id,
        rows,
    )
    assert result is not None
    return {"synced": result["synced"], "removed": result["removed"]}


async def submit(
    client: ProviderClient, account: Account, template: graph.NewTemplate
) -> dict[str, Any]:
    _whatsapp(account)
    return await graph.submit_template(client, account, template)


async def store_submitted(
    *, conn: Connection, account: Account, template: graph.NewTemplate, answer: dict[str, Any]
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""
        insert into public.whatsapp_templates
          (organization_id, channel_account_id, provider_template_id, name, language,
           category, status, parameter_format, components)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        on conflict (channel_account_id, name, language) do update
          set provider_template_id = excluded.provider_template_id,
              category = excluded.category, status = excluded.status,
              parameter_format = excluded.parameter_format,
              components = excluded.components, updated_at = now()
        returning {COLUMNS}
        """,
        account.organization_id,
        account.id,
        answer["id"],
        template.name,
        template.language,
        answer.get("category") or template.category,
        answer.get("status") or "PENDING",
        template.parameter_format,
        template.components,
    )
    assert row is not None
    return dict(row)


async def find(
    *, conn: Connection, channel_account_id: UUID, name: str, language: str
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"select {COLUMNS} from public.whatsapp_templates"
        " where channel_account_id = $1 and name = $2 and language = $3",
        channel_account_id,
        name,
        language,
    )
    if row is None:
        raise Unprocessable(
            f"No template {name} ({language}) on this WhatsApp account; sync its templates",
            code="unknown_template",
        )
    return dict(row)


async def list_templates(
    *, conn: Connection, organization_id: UUID, channel_account_id: UUID | None = None
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"select {COLUMNS} from public.whatsapp_templates where organization_id = $1"
        " and ($2::uuid is null or channel_account_id = $2)"
        " order by channel_account_id, name, language",
        organization_id,
        channel_account_id,
    )
    return [dict(r) for r in rows]


async def account_in_org(*, conn: Connection, organization_id: UUID, account_id: UUID) -> None:
    """NotFound unless the account is the caller's organization's (read under RLS)."""
    found = await conn.fetchval(
        "select 1 from public.channel_accounts where id = $1 and organization_id = $2",
        account_id,
        organization_id,
    )
    if found is None:
        raise NotFound("No such channel account")


# ---- the whole operations, as an endpoint runs them ---------------------------------------------


def _provider_failed(exc: ProviderError) -> AppError:
    """Graph's refusal (502, its message kept) or its absence (503): never a 500."""
    if exc.outcome == "unavailable":
        return ServiceUnavailable(
            f"WhatsApp did not answer: {exc.message}", code="provider_unavailable"
        )
    return UpstreamError(f"WhatsApp refused: {exc.message}", code="provider_rejected")


async def _account(runtime: Runtime, principal: Principal, account_id: UUID) -> Account:
    """The caller's organization's WhatsApp account, checked as the caller (managers and
    above), then loaded with its token as the service."""
    async with runtime.db.user_tx(principal) as conn:
        manager = await conn.fetchval(
            "select organization_id in (select app.org_ids_with_role('manager'))"
            " from public.channel_accounts where id = $1",
            account_id,
        )
        if manager is None:
            raise NotFound("No such channel account")
        if not manager:
            raise Forbidden("Managing templates needs the manager role or higher")
    async with runtime.db.service_tx() as conn:
        account = await load_account(conn=conn, account_id=account_id)
    _whatsapp(account)
    return account


async def sync(runtime: Runtime, *, principal: Principal, account_id: UUID) -> dict[str, int]:
    account = await _account(runtime, principal, account_id)
    try:
        listed = await fetch(ProviderClient(runtime.http, runtime.settings), account)
    except ProviderError as exc:
        raise _provider_failed(exc) from exc
    async with runtime.db.user_tx(principal) as conn:
        return await store_synced(conn=conn, account=account, templates=listed)


async def submit_new(
    runtime: Runtime, *, principal: Principal, account_id: UUID, template: graph.NewTemplate
) -> dict[str, Any]:
    account = await _account(runtime, principal, account_id)
    try:
        answer = await submit(ProviderClient(runtime.http, runtime.settings), account, template)
    except ProviderError as exc:
        raise _provider_failed(exc) from exc
    async with runtime.db.user_tx(principal) as conn:
        return await store_submitted(conn=conn, account=account, template=template, answer=answer)
