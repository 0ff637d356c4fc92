"""Connecting a Kommo account, and starting its imports (admins only).

By a long-lived token, or by OAuth 2.0 (shared/imports/kommo/oauth.py). Either way
the account is checked against Kommo (`GET /api/v4/account`) before anything is
stored: a refused token or code, or an unknown subdomain, is a 422 naming the
problem, and nothing changes. Tokens are kept in `private.kommo_tokens`, which no
API role reads, and are never returned.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shared import members
from shared.auth import UserPrincipal
from shared.billing import require_feature
from shared.channels.answers import ProviderError
from shared.db import Connection
from shared.errors import Conflict, NotFound, ServiceUnavailable, Unprocessable
from shared.imports import jobs
from shared.imports.kommo import oauth
from shared.imports.kommo.client import KommoClient, TokenBucket, normalize_subdomain
from shared.runtime import Runtime

COLUMNS = (
    "organization_id, subdomain, account_id, account_name, currency, connected_by, connected_at,"
    " auth"
)


def _unreachable(host: str, exc: ProviderError) -> Exception | None:
    """Kommo's answer when the account itself is the problem (or Kommo is down)."""
    if exc.status in (402, 404) or (exc.status is not None and 300 <= exc.status < 400):
        return Unprocessable(
            f"{host} is not a Kommo account ({exc.status})", code="kommo_unknown_subdomain"
        )
    if exc.status is None and exc.message.startswith("ConnectError"):  # no such host
        return Unprocessable(
            f"{host} could not be reached: check the subdomain", code="kommo_unknown_subdomain"
        )
    if exc.outcome != "refused":
        return ServiceUnavailable(f"Kommo did not answer: {exc.message}", code="kommo_unavailable")
    return None


async def _account(runtime: Runtime, subdomain: str, token: str) -> dict[str, Any]:
    client = KommoClient(
        http=runtime.http,
        settings=runtime.settings,
        subdomain=subdomain,
        token=token,
        bucket=TokenBucket(),
    )
    host = f"{subdomain}.kommo.com"
    try:
        account = await client.get("account")
    except ProviderError as exc:
        if exc.status == 401:
            raise Unprocessable(
                f"Kommo refused the token for {host} (401 Unauthorized): use a valid long-lived"
                " token of that account",
                code="kommo_bad_token",
            ) from exc
        raise _unreachable(host, exc) or Unprocessable(
            f"Kommo refused the connection: {exc.message}", code="kommo_refused"
        ) from exc
    if not account or not isinstance(account.get("id"), int):
        raise Unprocessable(
            f"{host} did not answer as a Kommo account", code="kommo_unknown_subdomain"
        )
    return account


def _subdomain(value: str, field: str) -> str:
    name = normalize_subdomain(value)
    if name is None:
        raise Unprocessable(
            f"{field}: a Kommo account such as 'acme' or acme.kommo.com",
            code="kommo_invalid_subdomain",
            details=[{"field": field, "message": "letters, digits and hyphens, 1 to 63"}],
        )
    return name


async def connect(
    runtime: Runtime, *, user: UserPrincipal, organization_id: UUID, subdomain: str, token: str
) -> dict[str, Any]:
    """A long-lived token of the account, checked with Kommo, then stored."""
    name = _subdomain(subdomain, "subdomain")
    async with runtime.db.user_tx(user) as conn:
        await members.require_role(conn=conn, organization_id=organization_id, at_least="admin")
    account = await _account(runtime, name, token.strip())
    return await _store(runtime, user, organization_id, name, account, token.strip())


async def start_oauth(runtime: Runtime, *, user: UserPrincipal, organization_id: UUID) -> str:
    """Kommo's consent page, for an admin of the organization."""
    async with runtime.db.user_tx(user) as conn:
        await members.require_role(conn=conn, organization_id=organization_id, at_least="admin")
    return oauth.authorize_url(organization_id=organization_id, user_id=user.user_id)


async def connect_oauth(
    runtime: Runtime, *, user: UserPrincipal, state: str, code: str, referer: str
) -> dict[str, Any]:
    """Kommo's answer to the admin's consent (shared/imports/kommo/oauth.py): the
    organization comes from the state this server signed for this admin."""
    organization_id = oauth.read_state(state, user_id=user.user_id)
    name = _subdomain(referer, "referer")
    async with runtime.db.user_tx(user) as conn:
        await members.require_role(conn=conn, organization_id=organization_id, at_least="admin")
    host = f"{name}.kommo.com"
    try:
        tokens = await oauth.exchange(runtime, subdomain=name, code=code.strip())
    except ProviderError as exc:
        raise _unreachable(host, exc) or Unprocessable(
            f"Kommo refused the authorization code for {host} ({exc.message}): connect again",
            code="kommo_oauth_refused",
        ) from exc
    account = await _account(runtime, name, tokens.access)
    return await _store(runtime, user, organization_id, name, account, tokens)


async def _store(
    runtime: Runtime,
    user: UserPrincipal,
    organization_id: UUID,
    name: str,
    account: dict[str, Any],
    credentials: str | oauth.Tokens,  # a long-lived token, or OAuth's
) -> dict[str, Any]:
    tokens = credentials if isinstance(credentials, oauth.Tokens) else None
    currency = account.get("currency")
    # the admin was checked by the caller; the organization is theirs, not the body's claim
    async with runtime.db.service_tx() as conn:
        row = await conn.fetchrow(
            "insert into public.kommo_connections as c (organization_id, subdomain, account_id,"
            " account_name, currency, connected_by, auth) values ($1, $2, $3, $4, $5, $6, $7)"
            " on conflict (organization_id) do update set subdomain = excluded.subdomain,"
            " account_id = excluded.account_id, account_name = excluded.account_name,"
            " currency = excluded.currency, connected_by = excluded.connected_by,"
            f" auth = excluded.auth, connected_at = now() returning {COLUMNS}",
            organization_id,
            name,
            account["id"],
            str(account.get("name") or name)[:200],
            currency
            if isinstance(currency, str) and len(currency) == 3 and currency.isupper()
            else None,
            user.user_id,
            "oauth" if tokens else "token",
        )
        await conn.execute(
            "insert into private.kommo_tokens (organization_id, token, refresh_token, expires_at)"
            " values ($1, $2, $3, $4) on conflict (organization_id) do update"
            " set token = excluded.token, refresh_token = excluded.refresh_token,"
            " expires_at = excluded.expires_at",
            organization_id,
            tokens.access if tokens else credentials,
            tokens.refresh if tokens else None,
            tokens.expires_at if tokens else None,
        )
    assert row is not None
    return dict(row)


async def get_connection(*, conn: Connection, organization_id: UUID) -> dict[str, Any]:
    await members.require_role(conn=conn, organization_id=organization_id, at_least="admin")
    row = await conn.fetchrow(
        f"select {COLUMNS} from public.kommo_connections where organization_id = $1",
        organization_id,
    )
    if row is None:
        raise NotFound("No Kommo account is connected", code="kommo_not_connected")
    return dict(row)


async def start_import(
    *, conn: Connection, user: UserPrincipal, organization_id: UUID, full: bool
) -> dict[str, Any]:
    """A pending Kommo job (the kommo-import cron runs it); one at a time per organization."""
    await get_connection(conn=conn, organization_id=organization_id)
    await require_feature(conn=conn, organization_id=organization_id, feature="imports")
    active = await conn.fetchval(
        "select id from public.import_jobs where organization_id = $1 and source = 'kommo'"
        " and status in ('pending', 'running') limit 1",
        organization_id,
    )
    if active is not None:
        raise Conflict(f"A Kommo import is already under way ({active})", code="import_in_progress")
    return await jobs.create_job(
        conn=conn,
        organization_id=organization_id,
        source="kommo",
        entity=None,
        options={"full": full},
        created_by=user.user_id,
    )


async def kommo_job(*, conn: Connection, job_id: UUID) -> dict[str, Any]:
    job = await jobs.get_job(conn=conn, job_id=job_id)
    if job["source"] != "kommo":
        raise NotFound("import job")
    return job


async def list_kommo_jobs(*, conn: Connection, organization_id: UUID) -> list[dict[str, Any]]:
    await members.require_role(conn=conn, organization_id=organization_id, at_least="admin")
    return [
        j
        for j in await jobs.list_jobs(conn=conn, organization_id=organization_id)
        if j["source"] == "kommo"
    ]
