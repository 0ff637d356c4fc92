"""Supabase Auth in trouble is Auth's trouble: a 502/503 with a code, never a 422,
and nothing stored, so the admin can simply try again."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import httpx
import pytest
import respx

from shared.db import Connection
from shared.settings import Settings
from tests.fixtures import load
from tests.functions.members_kit import INVITE, OTP, FakeAuth, accept, invite, make_team
from tests.support import make_user

Answer = Callable[[httpx.Request], httpx.Response]


def raises(exc: type[httpx.TransportError]) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        raise exc("Supabase Auth trouble", request=request)

    return answer


def answers(status: int, **kwargs: object) -> Answer:
    return lambda request: httpx.Response(status, **kwargs)  # type: ignore[arg-type]


FAILURES: dict[str, tuple[Answer, int, str]] = {
    "refused_connection": (raises(httpx.ConnectError), 502, "auth_unreachable"),
    "timeout": (raises(httpx.ReadTimeout), 502, "auth_timeout"),
    "500": (answers(500, json=load("supabase_auth", "error_inviting_user")), 502, "auth_failed"),
    "502_html": (answers(502, text="<html>Bad Gateway</html>"), 502, "auth_failed"),
    "429": (
        answers(429, json=load("supabase_auth", "over_email_send_rate_limit")),
        503,
        "auth_rate_limited",
    ),
    "400": (answers(400, json=load("supabase_auth", "validation_failed")), 502, "auth_refused"),
    "404_not_auth": (answers(404, text="Not Found"), 502, "auth_refused"),
    "200_not_json": (answers(200, text="ok"), 502, "auth_unexpected_response"),
    "200_no_user": (answers(200, json=[]), 502, "auth_unexpected_response"),
    "302": (answers(302, headers={"location": "/"}), 502, "auth_unexpected_response"),
}


@pytest.fixture
async def team(db: Connection) -> dict[str, UUID]:
    return await make_team(db)


async def nothing_stored(db: Connection) -> bool:
    return not await db.fetchval("select count(*) from organization_invitations") and not (
        await db.fetchval("select count(*) from private.invitation_tokens")
    )


def check_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert set(error) <= {"code", "message", "details"}


@respx.mock
@pytest.mark.parametrize("failure", sorted(FAILURES))
async def test_a_new_address_with_auth_in_trouble(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    team: dict[str, UUID],
    failure: str,
):
    answer, status, code = FAILURES[failure]
    respx.post(INVITE).mock(side_effect=answer)
    response = await invite(client, settings, team, "new@example.com")
    check_error(response, status, code)
    assert await nothing_stored(db)


@respx.mock
@pytest.mark.parametrize("failure", sorted(FAILURES))
async def test_an_existing_account_with_auth_in_trouble(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    team: dict[str, UUID],
    failure: str,
):
    """/invite says the account exists; then /otp (the magic link) fails."""
    answer, status, code = FAILURES[failure]
    await make_user(db, "known@example.com")
    respx.post(INVITE).mock(
        return_value=httpx.Response(422, json=load("supabase_auth", "email_exists"))
    )
    otp = respx.post(OTP).mock(side_effect=answer)
    response = await invite(client, settings, team, "known@example.com")
    check_error(response, status, code)
    assert otp.called
    assert await nothing_stored(db)


async def test_the_rate_limit_passes_on_auths_wait(
    client: httpx.AsyncClient, settings: Settings, team: dict[str, UUID]
):
    with respx.mock:
        respx.post(INVITE).respond(
            429,
            json=load("supabase_auth", "over_email_send_rate_limit"),
            headers={"Retry-After": "42"},
        )
        response = await invite(client, settings, team, "new@example.com")
    assert response.status_code == 503
    assert response.json()["error"]["details"]["retry_after_seconds"] == 42
    assert response.json()["error"]["details"]["auth_error_code"] == "over_email_send_rate_limit"


async def test_a_failed_resend_keeps_the_earlier_link_working(
    client: httpx.AsyncClient, settings: Settings, db: Connection, team: dict[str, UUID]
):
    with respx.mock:
        gotrue = FakeAuth(db)
        gotrue.install()
        first = await invite(client, settings, team, "new@example.com", "agent")
    token = gotrue.last.token
    await db.execute("update organization_invitations set sent_at = now() - interval '1 hour'")
    with respx.mock:
        respx.post(INVITE).mock(side_effect=raises(httpx.ConnectError))
        failed = await invite(client, settings, team, "new@example.com", "manager")
    assert failed.status_code == 502
    row = await db.fetchrow("select id, role::text from organization_invitations")
    assert (str(row["id"]), row["role"]) == (first.json()["id"], "agent")
    invitee = await db.fetchval("select id from auth.users where email = 'new@example.com'")
    assert (await accept(client, settings, invitee, token)).status_code == 200
