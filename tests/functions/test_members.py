from __future__ import annotations

from uuid import UUID

import asyncpg
import httpx
import pytest

from shared.db import Connection
from shared.runtime import Runtime
from shared.settings import Settings
from tests.functions.members_kit import URL, make_team, role_of
from tests.support import auth, make_org, make_user, principal


@pytest.fixture
async def org(db: Connection) -> dict[str, UUID]:
    return await make_team(db)


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


async def test_listing_members_shows_who_they_are_in_supabase_auth(
    client: httpx.AsyncClient, settings: Settings, org: dict[str, UUID]
):
    response = await client.get(
        URL, params={"organization_id": str(org["org"])}, headers=auth(settings, org["agent"])
    )
    assert response.status_code == 200
    rows = {r["user_id"]: r for r in response.json()["data"]}
    assert len(rows) == 4
    owner = rows[str(org["owner"])]
    assert (owner["email"], owner["full_name"], owner["role"]) == (
        "owner@acme.example",
        "Olga Owner",
        "owner",
    )
    assert rows[str(org["agent"])]["email"] == "agent@acme.example"


async def _edit_own_profile(runtime: Runtime, user: UUID, column: str, value: str) -> None:
    """What the SPA can do through PostgREST: update its own profiles row."""
    async with runtime.db.user_tx(principal(user)) as conn:
        await conn.execute(f"update public.profiles set {column} = $2 where id = $1", user, value)


async def test_a_member_cannot_pass_for_another_in_the_member_list(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    db: Connection,
    org: dict[str, UUID],
):
    before = await client.get(
        URL, params={"organization_id": str(org["org"])}, headers=auth(settings, org["admin"])
    )
    # The agent takes the owner's name, and tries the owner's address too.
    await _edit_own_profile(runtime, org["agent"], "full_name", "Olga Owner")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await _edit_own_profile(runtime, org["agent"], "email", "owner@acme.example")
    after = await client.get(
        URL, params={"organization_id": str(org["org"])}, headers=auth(settings, org["admin"])
    )
    assert after.json() == before.json()
    agent = next(r for r in after.json()["data"] if r["user_id"] == str(org["agent"]))
    assert (agent["email"], agent["full_name"]) == ("agent@acme.example", None)
    assert [r["email"] for r in after.json()["data"]].count("owner@acme.example") == 1
    assert await db.fetchval("select email from profiles where id = $1", org["agent"]) == (
        "agent@acme.example"
    )


async def test_a_tampered_profile_email_does_not_reach_the_member_list(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
):
    """Even a profile rewritten past the trigger (as the database owner) changes nothing."""
    async with db.transaction():
        await db.execute("alter table profiles disable trigger profiles_email_follows_auth")
        await db.execute(
            "update profiles set email = 'owner@acme.example', full_name = 'Olga Owner'"
            " where id = $1",
            org["agent"],
        )
        await db.execute("alter table profiles enable trigger profiles_email_follows_auth")
    response = await client.get(
        URL, params={"organization_id": str(org["org"])}, headers=auth(settings, org["owner"])
    )
    agent = next(r for r in response.json()["data"] if r["user_id"] == str(org["agent"]))
    assert (agent["email"], agent["full_name"]) == ("agent@acme.example", None)


async def test_profile_email_still_follows_the_account(db: Connection, org: dict[str, UUID]):
    await db.execute(
        "update auth.users set email = 'agent.new@acme.example' where id = $1", org["agent"]
    )
    assert await db.fetchval("select email from profiles where id = $1", org["agent"]) == (
        "agent.new@acme.example"
    )


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
