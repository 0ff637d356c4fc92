"""A team to invite into, and Supabase Auth's /invite and /otp as GoTrue documents them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID, uuid4

import httpx
import respx

from shared.db import Connection
from shared.settings import Settings
from tests.fixtures import load
from tests.support import auth, make_org, make_user, member

URL = "/functions/v1/members"
AUTH = "http://127.0.0.1:54321/auth/v1"
INVITE = f"{AUTH}/invite"
OTP = f"{AUTH}/otp"


async def make_team(db: Connection) -> dict[str, UUID]:
    owner = await make_user(db, "owner@acme.example", full_name="Olga Owner")
    org_id = await make_org(db, owner, "Acme")
    return {
        "org": org_id,
        "owner": owner,
        "admin": await member(db, org_id, "admin", "admin@acme.example"),
        "manager": await member(db, org_id, "manager", "manager@acme.example"),
        "agent": await member(db, org_id, "agent", "agent@acme.example"),
    }


@dataclass
class Sent:
    endpoint: str
    body: dict[str, Any]
    redirect_to: str
    headers: httpx.Headers

    @property
    def token(self) -> str:
        return parse_qs(urlsplit(self.redirect_to).query)["invitation_token"][0]


@dataclass
class FakeAuth:
    """GoTrue over the test database: /invite creates the (unconfirmed) user and answers
    with it, refusing a confirmed account with 422 email_exists; /otp answers {}."""

    db: Connection
    sent: list[Sent] = field(default_factory=list)
    unconfirmed: set[str] = field(default_factory=set)

    def install(self) -> None:
        respx.post(INVITE).mock(side_effect=self._invite)
        respx.post(OTP).mock(side_effect=self._otp)

    def _record(self, endpoint: str, request: httpx.Request) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(request.content)
        redirect_to = request.url.params["redirect_to"]
        self.sent.append(Sent(endpoint, body, redirect_to, request.headers))
        return body

    async def _invite(self, request: httpx.Request) -> httpx.Response:
        email = json.loads(request.content)["email"]
        existing = await self.db.fetchval("select id from auth.users where email = $1", email)
        if existing is not None and email not in self.unconfirmed:
            return httpx.Response(422, json=load("supabase_auth", "email_exists"))
        self._record("invite", request)
        user = load("supabase_auth", "invite_user")
        user_id = existing or uuid4()
        user.update(id=str(user_id), email=email, user_metadata={})
        if existing is None:
            await self.db.execute(
                "insert into auth.users (id, email) values ($1, $2)", user_id, email
            )
            self.unconfirmed.add(email)
        return httpx.Response(200, json=user)

    async def _otp(self, request: httpx.Request) -> httpx.Response:
        self._record("otp", request)
        return httpx.Response(200, json=load("supabase_auth", "otp_sent"))

    @property
    def last(self) -> Sent:
        return self.sent[-1]


async def invite(
    client: httpx.AsyncClient,
    settings: Settings,
    team: dict[str, UUID],
    email: str,
    role: str = "agent",
    by: str = "admin",
) -> httpx.Response:
    return await client.post(
        URL,
        json={"organization_id": str(team["org"]), "email": email, "role": role},
        headers=auth(settings, team[by]),
    )


async def accept(
    client: httpx.AsyncClient, settings: Settings, user: UUID, token: str
) -> httpx.Response:
    return await client.post(
        f"{URL}/invitations/accept", json={"token": token}, headers=auth(settings, user)
    )


async def role_of(db: Connection, org: UUID, user: UUID) -> str | None:
    role: str | None = await db.fetchval(
        "select role::text from organization_members where organization_id = $1 and user_id = $2",
        org,
        user,
    )
    return role


async def user_id_of(db: Connection, email: str) -> UUID:
    user_id: UUID = await db.fetchval("select id from auth.users where email = $1", email)
    return user_id
