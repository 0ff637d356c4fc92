"""An OAuth connection's access token renewed before it expires (once, however many
runners ask at once), and a connection Kommo no longer renews failing its import
with the reason."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import pytest
import respx

from shared.db import Connection
from shared.imports.kommo import connect, oauth
from shared.runtime import Runtime
from tests.shared.imports.kommo.fake import FakeClock, FakeKommo, blocked, unavailable
from tests.shared.imports.kommo.kit import new_job, register_integration, run_job
from tests.support import make_org, make_user, module_runtime_fixtures, principal

runtime, db = module_runtime_fixtures()
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("kommo_oauth")]


@pytest.fixture
def kommo(monkeypatch: pytest.MonkeyPatch) -> FakeKommo:
    fake = FakeKommo(subdomain="renewed", clock=FakeClock())
    register_integration(monkeypatch, fake)
    return fake


async def connected(runtime: Runtime, db: Connection, kommo: FakeKommo) -> tuple[UUID, UUID]:
    """An organization connected by OAuth whose access token expires in a minute (Kommo's
    routes installed in the test's respx mock)."""
    kommo.install()
    owner = await make_user(db)
    org = await make_org(db, owner)
    kommo.codes.add("code")
    url = oauth.authorize_url(organization_id=org, user_id=owner)
    await connect.connect_oauth(
        runtime,
        user=principal(owner),
        state=parse_qs(urlsplit(url).query)["state"][0],
        code="code",
        referer=f"{kommo.subdomain}.kommo.com",
    )
    await db.execute(
        "update private.kommo_tokens set expires_at = now() + interval '1 minute'"
        " where organization_id = $1",
        org,
    )
    return org, owner


@respx.mock
async def test_a_token_about_to_expire_is_renewed_before_the_run(
    runtime: Runtime, db: Connection, kommo: FakeKommo
) -> None:
    org, owner = await connected(runtime, db, kommo)
    assert await run_job(runtime, await new_job(db, org, owner)) == "completed"
    grants = [r["body"]["grant_type"] for r in kommo.requests if r["path"] == "oauth2/access_token"]
    assert grants == ["authorization_code", "refresh_token"]
    # every API request after the renewal carried the new token (the fake refuses the old)
    stored = await db.fetchrow(
        "select token, refresh_token, expires_at > now() + interval '23 hours' as fresh"
        " from private.kommo_tokens where organization_id = $1",
        org,
    )
    assert tuple(stored) == ("access-2", "refresh-2", True)
    assert kommo.token == "access-2"
    # a second run has nothing to renew
    assert await run_job(runtime, await new_job(db, org, owner)) == "completed"
    assert kommo.issued == 2


@respx.mock
async def test_runners_asking_at_once_spend_the_refresh_token_once(
    runtime: Runtime, db: Connection, kommo: FakeKommo
) -> None:
    org, _ = await connected(runtime, db, kommo)

    async def token() -> tuple[str, str] | None:
        async with runtime.db.service_tx() as conn:
            return await oauth.fresh_token(runtime, conn, organization_id=org)

    first, second = await asyncio.gather(token(), token())
    assert first == second == ("renewed", "access-2")
    assert kommo.issued == 2  # the code's pair, then one renewal


@respx.mock
async def test_a_connection_kommo_no_longer_renews_fails_its_import_with_the_reason(
    runtime: Runtime, db: Connection, kommo: FakeKommo
) -> None:
    org, owner = await connected(runtime, db, kommo)
    kommo.refresh_token = "revoked by the account's admin"
    job = await new_job(db, org, owner)
    assert await run_job(runtime, job) == "failed"
    error = await db.fetchval("select error from import_jobs where id = $1", job)
    assert error["code"] == "kommo_unauthorized"
    assert "connect Kommo again" in error["message"]
    assert [r["path"] for r in kommo.requests][-1] == "oauth2/access_token"  # nothing after
    assert (
        await db.fetchval("select token from private.kommo_tokens where organization_id = $1", org)
        == "access-1"
    )


@respx.mock
async def test_a_renewal_kommo_did_not_answer_is_tried_again_by_the_next_run(
    runtime: Runtime, db: Connection, kommo: FakeKommo
) -> None:
    org, owner = await connected(runtime, db, kommo)
    kommo.failures[("oauth2/access_token", 1)] = [unavailable()]  # after the request left
    job = await new_job(db, org, owner)
    assert await run_job(runtime, job) == "running"  # left for the next run
    stored = "select token, refresh_token from private.kommo_tokens where organization_id = $1"
    assert tuple(await db.fetchrow(stored, org)) == ("access-1", "refresh-1")
    assert await run_job(runtime, job) == "completed"
    assert tuple(await db.fetchrow(stored, org)) == ("access-2", "refresh-2")


@respx.mock
async def test_a_renewal_kommo_refuses_otherwise_fails_the_import_with_kommos_words(
    runtime: Runtime, db: Connection, kommo: FakeKommo
) -> None:
    org, owner = await connected(runtime, db, kommo)
    kommo.failures[("oauth2/access_token", 1)] = [blocked()]
    job = await new_job(db, org, owner)
    assert await run_job(runtime, job) == "failed"
    error = await db.fetchval("select error from import_jobs where id = $1", job)
    assert (error["code"], error["status"]) == ("kommo_refused", 403)
    assert (
        await db.fetchval(
            "select refresh_token from private.kommo_tokens where organization_id = $1", org
        )
        == "refresh-1"
    )
