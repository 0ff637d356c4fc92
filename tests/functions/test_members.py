from __future__ import annotations

import json
from uuid import UUID

import httpx
import pytest
import respx

from shared.db import Connection
from shared.settings import Settings
from tests.fixtures import load
from tests.support import auth, make_org, make_user, member

URL = "/functions/v1/members"
INVITE = "http://127.0.0.1:54321/auth/v1/invite"


@pytest.fixture
async def org(db: Connection) -> dict[str, UUID]:
    owner = await make_user(db, "owner@acme.example")
    org_id = await make_org(db, owner, "Acme")
    return {
        "org": org_id,
        "owner": owner,
        "admin": await member(db, org_id, "admin"),
        "manager": await member(db, org_id, "manager"),
        "agent": await member(db, org_id, "agent"),
    }


def gotrue_creates_user(db: Connection):
    """GoTrue's invite: it inserts the auth user, then answers with it (documented shape)."""

    async def handler(request: httpx.Request) -> httpx.Response:
        body = load("supabase_auth", "invite_user")
        sent = json.loads(request.content)
        body["email"] = sent["email"]
        await db.execute(
            "insert into auth.users (id, email) values ($1, $2)", UUID(body["id"]), sent["email"]
        )
        return httpx.Response(200, json=body)

    return handler


async def role_of(db: Connection, org: UUID, user: UUID) -> str | None:
    role: str | None = await db.fetchval(
        "select role::text from organization_members where organization_id = $1 and user_id = $2",
        org,
        user,
    )
    return role


@respx.mock
async def test_an_admin_invites_a_new_person_through_supabase_auth(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    route = respx.post(INVITE).mock(side_effect=gotrue_creates_user(db))
    response = await client.post(
        URL,
        json={
            "organization_id": str(org["org"]),
            "email": "New.Person@example.com",
            "role": "manager",
        },
        headers=auth(settings, org["admin"]),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["invited"] is True
    assert body["role"] == "manager"
    sent = route.calls.last.request
    assert sent.headers["apikey"] == settings.service_key
    assert sent.headers["authorization"] == f"Bearer {settings.service_key}"
    assert json.loads(sent.content)["data"] == {"organization_id": str(org["org"])}
    assert await role_of(db, org["org"], UUID(body["user_id"])) == "manager"


@respx.mock
async def test_inviting_someone_with_an_account_adds_them_without_an_email(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    route = respx.post(INVITE)
    existing = await make_user(db, "known@example.com")
    response = await client.post(
        URL,
        json={"organization_id": str(org["org"]), "email": "KNOWN@example.com"},
        headers=auth(settings, org["admin"]),
    )
    assert response.status_code == 201
    assert response.json()["invited"] is False
    assert not route.called
    assert await role_of(db, org["org"], existing) == "agent"


async def test_inviting_a_member_twice_is_a_conflict(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    response = await client.post(
        URL,
        json={"organization_id": str(org["org"]), "email": "owner@acme.example"},
        headers=auth(settings, org["admin"]),
    )
    assert response.status_code == 409


@respx.mock
@pytest.mark.parametrize(
    ("inviter", "role"), [("agent", "agent"), ("manager", "agent"), ("admin", "owner")]
)
async def test_who_may_invite_whom(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    org: dict[str, UUID],
    inviter: str,
    role: str,
):
    route = respx.post(INVITE)
    response = await client.post(
        URL,
        json={"organization_id": str(org["org"]), "email": "x@example.com", "role": role},
        headers=auth(settings, org[inviter]),
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert not route.called, "no e-mail goes out for a refused invite"


@respx.mock
async def test_an_owner_may_invite_an_owner(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    respx.post(INVITE).mock(side_effect=gotrue_creates_user(db))
    response = await client.post(
        URL,
        json={"organization_id": str(org["org"]), "email": "co@example.com", "role": "owner"},
        headers=auth(settings, org["owner"]),
    )
    assert response.status_code == 201
    assert response.json()["role"] == "owner"


@respx.mock
async def test_supabase_auth_failing_is_a_502_and_adds_nobody(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    respx.post(INVITE).mock(return_value=httpx.Response(500, json={"code": 500, "msg": "boom"}))
    before = await db.fetchval("select count(*) from organization_members")
    response = await client.post(
        URL,
        json={"organization_id": str(org["org"]), "email": "x@example.com"},
        headers=auth(settings, org["admin"]),
    )
    assert response.status_code == 502
    assert await db.fetchval("select count(*) from organization_members") == before


@respx.mock
async def test_supabase_auth_refusing_an_existing_email_is_a_conflict(
    client: httpx.AsyncClient, settings: Settings, org: dict[str, UUID]
):
    respx.post(INVITE).mock(
        return_value=httpx.Response(422, json=load("supabase_auth", "email_exists"))
    )
    response = await client.post(
        URL,
        json={"organization_id": str(org["org"]), "email": "x@example.com"},
        headers=auth(settings, org["admin"]),
    )
    assert response.status_code == 409


async def test_members_of_another_organization_are_not_found(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    stranger = await make_user(db)
    other = await make_org(db, stranger)
    response = await client.get(
        URL, params={"organization_id": str(other)}, headers=auth(settings, org["admin"])
    )
    assert response.status_code == 404
    response = await client.patch(
        f"{URL}/{stranger}",
        json={"organization_id": str(other), "role": "agent"},
        headers=auth(settings, org["owner"]),
    )
    assert response.status_code == 404


async def test_listing_members_shows_their_profiles(
    client: httpx.AsyncClient, settings: Settings, org: dict[str, UUID]
):
    response = await client.get(
        URL, params={"organization_id": str(org["org"])}, headers=auth(settings, org["agent"])
    )
    assert response.status_code == 200
    rows = response.json()["data"]
    assert len(rows) == 4
    assert {r["email"] for r in rows} >= {"owner@acme.example"}


@pytest.mark.parametrize(
    ("actor", "target", "new_role", "status"),
    [
        ("agent", "manager", "agent", 403),  # agents cannot change roles
        ("manager", "agent", "manager", 403),
        ("admin", "agent", "manager", 200),
        ("admin", "owner", "admin", 403),  # only owners touch owners
        ("admin", "agent", "owner", 403),
        ("owner", "admin", "owner", 200),
        ("owner", "owner", "admin", 409),  # the last owner cannot step down
    ],
)
async def test_the_role_matrix_for_changing_roles(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    org: dict[str, UUID],
    actor: str,
    target: str,
    new_role: str,
    status: int,
):
    before = await role_of(db, org["org"], org[target])
    response = await client.patch(
        f"{URL}/{org[target]}",
        json={"organization_id": str(org["org"]), "role": new_role},
        headers=auth(settings, org[actor]),
    )
    assert response.status_code == status, response.text
    expected = new_role if status == 200 else before
    assert await role_of(db, org["org"], org[target]) == expected


@pytest.mark.parametrize(
    ("actor", "target", "status"),
    [
        ("agent", "manager", 403),
        ("admin", "owner", 403),  # an admin cannot remove the (last) owner
        ("owner", "owner", 409),  # nor can the last owner leave
        ("admin", "agent", 204),
        ("agent", "agent", 204),  # anyone may leave
    ],
)
async def test_the_role_matrix_for_removing_members(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    org: dict[str, UUID],
    actor: str,
    target: str,
    status: int,
):
    response = await client.delete(
        f"{URL}/{org[target]}",
        params={"organization_id": str(org["org"])},
        headers=auth(settings, org[actor]),
    )
    assert response.status_code == status, response.text
    still_there = await role_of(db, org["org"], org[target]) is not None
    assert still_there == (status != 204)
