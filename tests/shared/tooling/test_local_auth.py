"""The local Auth signs with ES256 and publishes its key where Supabase Auth does."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit
from uuid import UUID, uuid4

import httpx
import jwt
import pytest
from pydantic import SecretStr
from supabase_auth import AsyncGoTrueAdminAPI, AsyncGoTrueClient
from supabase_auth.errors import AuthApiError

from shared.auth import mint_access_token
from shared.db import Connection
from shared.runtime import Runtime
from shared.settings import Settings
from shared.tooling.gateway import Gateway
from tests.functions.members_kit import make_team, role_of
from tests.support import auth, make_org, make_user

JWKS = "/auth/v1/.well-known/jwks.json"


async def test_the_gateway_publishes_the_key_local_tokens_are_signed_with(
    client: httpx.AsyncClient, settings: Settings, db: Connection
):
    response = await client.get(JWKS)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=600"
    [key] = response.json()["keys"]
    assert {key["kty"], key["crv"], key["alg"], key["use"]} == {"EC", "P-256", "ES256", "sig"}
    assert "d" not in key  # the public part only
    token = auth(settings, await make_user(db))["Authorization"].removeprefix("Bearer ")
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"]) == ("ES256", key["kid"])


async def test_a_local_token_is_verified_by_the_jwks_the_gateway_serves(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, db: Connection
):
    owner = await make_user(db)
    org = await make_org(db, owner)
    response = await client.get(
        "/functions/v1/api-keys",
        params={"organization_id": str(org)},
        headers=auth(settings, owner),
    )
    assert response.status_code == 200
    assert runtime.jwks._fetched_at is not None  # fetched over HTTP, not taken in process


async def test_only_get_reads_the_jwks(client: httpx.AsyncClient):
    response = await client.post(JWKS, json={})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_outside_local_mode_there_is_no_local_key(database_url: str):
    production = Settings(
        mode="production",
        database_url=database_url,
        service_role_key=SecretStr("k"),
        cors_origins=["https://app.example.com"],
        _env_file=None,  # type: ignore[call-arg]
    )
    transport = httpx.ASGITransport(app=Gateway(production))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as gateway:
        assert (await gateway.get(JWKS)).status_code == 404
    with pytest.raises(RuntimeError, match="outside local mode"):
        mint_access_token(production, user_id=uuid4(), email=None)


# The local Auth's API, through the official Python client (supabase_auth).

PASSWORD = "correct horse battery"


def gotrue(settings: Settings, gateway: Gateway) -> AsyncGoTrueClient:
    return AsyncGoTrueClient(
        url=f"{settings.supabase_url}/auth/v1",
        headers={"apikey": settings.local_key("anon")},
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway)),
        auto_refresh_token=False,
    )


async def test_the_python_client_signs_up_in_refreshes_calls_a_function_and_out(
    settings: Settings, gateway: Gateway, local: httpx.AsyncClient, db: Connection
):
    client = gotrue(settings, gateway)
    signed_up = await client.sign_up(
        {"email": "Ada@Example.com", "password": PASSWORD, "options": {"data": {"name": "Ada"}}}
    )
    assert signed_up.user is not None and signed_up.session is not None
    assert signed_up.user.email == "ada@example.com"
    assert signed_up.user.user_metadata == {"name": "Ada"}
    stored = await db.fetchval(
        "select encrypted_password from auth.users where email = $1", "ada@example.com"
    )
    assert stored.startswith("$2a$10$")  # bcrypt, never the password

    session = (
        await client.sign_in_with_password({"email": "ada@example.com", "password": PASSWORD})
    ).session
    assert session is not None and session.expires_in == 3600
    claims = jwt.decode(session.access_token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["iss"] == f"{settings.supabase_url}/auth/v1"
    assert (claims["aud"], claims["role"], claims["aal"]) == (
        "authenticated",
        "authenticated",
        "aal1",
    )
    assert (claims["sub"], claims["email"]) == (signed_up.user.id, "ada@example.com")
    assert claims["app_metadata"] == {"provider": "email", "providers": ["email"]}
    assert claims["user_metadata"] == {"name": "Ada"}
    assert claims["amr"][0]["method"] == "password"
    assert (
        claims["session_id"]
        != jwt.decode(signed_up.session.access_token, options={"verify_signature": False})[
            "session_id"
        ]
    )

    refreshed = (await client.refresh_session(session.refresh_token)).session
    assert refreshed is not None
    assert refreshed.refresh_token != session.refresh_token
    again = jwt.decode(refreshed.access_token, options={"verify_signature": False})
    assert again["session_id"] == claims["session_id"]
    user = await client.get_user(refreshed.access_token)
    assert user is not None and user.user.id == signed_up.user.id

    org = await make_org(db, UUID(signed_up.user.id))
    response = await local.get(
        "/functions/v1/api-keys",
        params={"organization_id": str(org)},
        headers={"Authorization": f"Bearer {refreshed.access_token}"},
    )
    assert response.status_code == 200, response.text

    await client.sign_out()
    with pytest.raises(AuthApiError) as refused:
        await client.refresh_session(refreshed.refresh_token)
    assert str(refused.value.code) == "refresh_token_not_found"
    with pytest.raises(AuthApiError) as ended:
        await client.get_user(refreshed.access_token)
    assert ended.value.code == "session_not_found"


async def test_the_admin_api_creates_users_and_generates_links(
    settings: Settings, gateway: Gateway
):
    admin = AsyncGoTrueAdminAPI(
        url=f"{settings.supabase_url}/auth/v1",
        headers={"apikey": settings.service_key, "Authorization": f"Bearer {settings.service_key}"},
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway)),
    )
    created = await admin.create_user(
        {"email": "cy@example.com", "password": PASSWORD, "email_confirm": True}
    )
    assert created.user.email == "cy@example.com" and created.user.email_confirmed_at
    client = gotrue(settings, gateway)
    signed_in = await client.sign_in_with_password(
        {"email": "cy@example.com", "password": PASSWORD}
    )
    assert signed_in.session is not None

    link = await admin.generate_link({"type": "magiclink", "email": "cy@example.com"})
    assert link.properties.action_link.startswith(f"{settings.supabase_url}/auth/v1/verify?")
    verified = await client.verify_otp(
        {"type": "magiclink", "token_hash": link.properties.hashed_token}
    )
    assert verified.session is not None and verified.user is not None
    assert verified.user.id == created.user.id
    with pytest.raises(AuthApiError) as spent:
        await client.verify_otp({"type": "magiclink", "token_hash": link.properties.hashed_token})
    assert spent.value.code == "otp_expired"

    with pytest.raises(AuthApiError) as exists:
        await admin.create_user({"email": "cy@example.com", "password": PASSWORD})
    assert (exists.value.status, exists.value.code) == (422, "email_exists")


async def test_an_invitation_goes_through_the_local_auth_and_the_invitee_accepts(
    settings: Settings, gateway: Gateway, local: httpx.AsyncClient, db: Connection
):
    team = await make_team(db)
    invited = await local.post(
        "/functions/v1/members",
        json={"organization_id": str(team["org"]), "email": "new@acme.example", "role": "agent"},
        headers=auth(settings, team["admin"]),
    )
    assert invited.status_code == 201, invited.text
    mail = await db.fetchrow("select email, kind, link from auth.local_outbox")
    assert mail is not None
    email, kind, link = mail
    assert (email, kind) == ("new@acme.example", "invite")

    # The invitee clicks the link: Auth redirects to the accept page, session in the fragment.
    clicked = await local.get(link.removeprefix(settings.supabase_url))
    assert clicked.status_code == 303
    page, _, fragment = clicked.headers["location"].partition("#")
    session = parse_qs(fragment)
    token = parse_qs(urlsplit(page).query)["invitation_token"][0]
    reopened = await local.get(link.removeprefix(settings.supabase_url))
    assert reopened.status_code == 303  # a spent link: back to the app, with the error
    assert parse_qs(reopened.headers["location"].partition("#")[2])["error_code"] == ["otp_expired"]
    accepted = await local.post(
        "/functions/v1/members/invitations/accept",
        json={"token": token},
        headers={"Authorization": f"Bearer {session['access_token'][0]}"},
    )
    assert accepted.status_code == 200, accepted.text
    invitee = await db.fetchval("select id from auth.users where email = 'new@acme.example'")
    assert await role_of(db, team["org"], invitee) == "agent"
    assert await db.fetchval(
        "select email_confirmed_at is not null from auth.users where id = $1", invitee
    )

    # The invitee chooses a password, and signs in with it from then on.
    client = gotrue(settings, gateway)
    await client.set_session(session["access_token"][0], session["refresh_token"][0])
    updated = await client.update_user({"password": PASSWORD, "data": {"name": "Nina"}})
    assert updated.user.user_metadata == {"name": "Nina"}
    signed_in = await client.sign_in_with_password(
        {"email": "new@acme.example", "password": PASSWORD}
    )
    assert signed_in.user is not None and signed_in.user.id == str(invitee)

    # Invited again once confirmed: /invite refuses, so a magic link goes out instead.
    await db.execute("delete from public.organization_members where user_id = $1", invitee)
    again = await local.post(
        "/functions/v1/members",
        json={"organization_id": str(team["org"]), "email": "new@acme.example", "role": "agent"},
        headers=auth(settings, team["admin"]),
    )
    assert again.status_code == 201, again.text
    kinds = [r["kind"] for r in await db.fetch("select kind from auth.local_outbox order by id")]
    assert kinds == ["invite", "magiclink"]
