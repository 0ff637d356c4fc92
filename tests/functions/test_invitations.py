"""Invitations need consent: nobody joins until they accept with their own account."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from uuid import UUID

import httpx
import pytest
import respx

from shared.db import Connection
from shared.settings import Settings
from tests.functions.members_kit import (
    URL,
    FakeAuth,
    accept,
    invite,
    make_team,
    role_of,
    user_id_of,
)
from tests.support import auth, make_org, make_user

INVITATION_FIELDS = {
    "id",
    "organization_id",
    "email",
    "role",
    "invited_by",
    "created_at",
    "sent_at",
    "expires_at",
    "status",
}


@pytest.fixture
async def team(db: Connection) -> dict[str, UUID]:
    return await make_team(db)


@pytest.fixture
def gotrue(db: Connection) -> Iterator[FakeAuth]:
    with respx.mock:
        fake = FakeAuth(db)
        fake.install()
        yield fake


async def members_count(db: Connection, org: UUID) -> int:
    count: int = await db.fetchval(
        "select count(*) from organization_members where organization_id = $1", org
    )
    return count


async def let_resend(db: Connection) -> None:
    """As if the last e-mail went out long ago (the resend pause is a minute)."""
    await db.execute("update organization_invitations set sent_at = now() - interval '1 hour'")


async def test_an_unknown_address_is_invited_through_supabase_auth_and_joins_nobody(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    team: dict[str, UUID],
    gotrue: FakeAuth,
):
    response = await invite(client, settings, team, "New.Person@Example.com", "manager")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == INVITATION_FIELDS
    assert (body["email"], body["role"], body["status"]) == (
        "new.person@example.com",
        "manager",
        "pending",
    )
    assert body["invited_by"] == str(team["admin"])
    sent = gotrue.last
    assert sent.endpoint == "invite"
    assert sent.body == {"email": "new.person@example.com", "data": {}}
    assert sent.headers["apikey"] == settings.service_key
    assert sent.headers["authorization"] == f"Bearer {settings.service_key}"
    assert sent.redirect_to.startswith(f"{settings.invitation_redirect_url}?invitation_token=")
    # only the token's hash is stored, and nobody joined
    stored = await db.fetchval(
        "select token_hash from private.invitation_tokens where invitation_id = $1",
        UUID(body["id"]),
    )
    assert stored == hashlib.sha256(sent.token.encode()).digest()
    assert await members_count(db, team["org"]) == 4


async def test_known_and_unknown_addresses_get_the_same_answer(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    team: dict[str, UUID],
    gotrue: FakeAuth,
):
    known = await make_user(db, "known@example.com")
    answers = [
        await invite(client, settings, team, "known@example.com"),
        await invite(client, settings, team, "unknown@example.com"),
    ]
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].headers.keys() == answers[1].headers.keys()
    first, second = (a.json() for a in answers)
    assert set(first) == set(second) == INVITATION_FIELDS
    differing = {k for k in first if first[k] != second[k]}
    assert differing <= {"id", "email", "created_at", "sent_at", "expires_at"}
    # the account got a magic link (invite refuses confirmed accounts), and was not added
    assert [s.endpoint for s in gotrue.sent] == ["otp", "invite"]
    assert gotrue.sent[0].body == {"email": "known@example.com", "create_user": False}
    assert "invitation_token=" in gotrue.sent[0].redirect_to
    assert await role_of(db, team["org"], known) is None


async def test_the_invitee_accepts_with_their_own_account_and_gets_the_role(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    team: dict[str, UUID],
    gotrue: FakeAuth,
):
    response = await invite(client, settings, team, "new@example.com", "manager")
    invitee = await user_id_of(db, "new@example.com")
    joined = await accept(client, settings, invitee, gotrue.last.token)
    assert joined.status_code == 200, joined.text
    assert joined.json()["organization_id"] == str(team["org"])
    assert (joined.json()["email"], joined.json()["role"]) == ("new@example.com", "manager")
    assert await role_of(db, team["org"], invitee) == "manager"
    row = await db.fetchrow(
        "select accepted_at, accepted_by from organization_invitations where id = $1",
        UUID(response.json()["id"]),
    )
    assert row["accepted_at"] is not None and row["accepted_by"] == invitee
    pending = await client.get(
        f"{URL}/invitations",
        params={"organization_id": str(team["org"])},
        headers=auth(settings, team["admin"]),
    )
    assert pending.json() == {"data": []}


async def test_an_existing_account_accepts_too(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    team: dict[str, UUID],
    gotrue: FakeAuth,
):
    known = await make_user(db, "known@example.com")
    await invite(client, settings, team, "KNOWN@example.com")
    assert await role_of(db, team["org"], known) is None
    assert (await accept(client, settings, known, gotrue.last.token)).status_code == 200
    assert await role_of(db, team["org"], known) == "agent"


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("wrong_user", 403, "invitation_wrong_user"),
        ("expired", 409, "invitation_expired"),
        ("revoked", 409, "invitation_revoked"),
        ("accepted", 409, "invitation_already_accepted"),
        ("unknown_token", 404, "invitation_not_found"),
        ("malformed_token", 422, "validation_error"),
    ],
)
async def test_an_invitation_that_cannot_be_accepted_says_why(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    team: dict[str, UUID],
    gotrue: FakeAuth,
    case: str,
    status: int,
    code: str,
):
    created = await invite(client, settings, team, "new@example.com")
    invitation = UUID(created.json()["id"])
    invitee = await user_id_of(db, "new@example.com")
    token = gotrue.last.token
    who = invitee
    if case == "wrong_user":
        who = await make_user(db, "someone.else@example.com")
    elif case == "expired":
        await db.execute(
            "update organization_invitations set expires_at = now() - interval '1 second'"
        )
    elif case == "revoked":
        revoked = await client.delete(
            f"{URL}/invitations/{invitation}", headers=auth(settings, team["admin"])
        )
        assert revoked.status_code == 204
    elif case == "accepted":
        assert (await accept(client, settings, invitee, token)).status_code == 200
    elif case == "unknown_token":
        token = "x" * 43
    elif case == "malformed_token":
        token = "not a token!"
    before = await db.fetch("select * from organization_members order by id")
    refused = await accept(client, settings, who, token)
    assert refused.status_code == status, refused.text
    assert refused.json()["error"]["code"] == code
    assert await db.fetch("select * from organization_members order by id") == before
    if case == "wrong_user":  # the right person can still accept
        assert (await accept(client, settings, invitee, token)).status_code == 200


async def test_inviting_again_refreshes_the_open_invitation(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    team: dict[str, UUID],
    gotrue: FakeAuth,
):
    first = await invite(client, settings, team, "new@example.com", "agent")
    old_token = gotrue.last.token
    await let_resend(db)
    await db.execute("update organization_invitations set expires_at = now() + interval '1 hour'")
    again = await invite(client, settings, team, "New@Example.com", "manager")
    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["role"] == "manager"
    assert datetime.fromisoformat(again.json()["expires_at"]) > datetime.fromisoformat(
        first.json()["expires_at"]
    )
    assert await db.fetchval("select count(*) from organization_invitations") == 1
    assert len(gotrue.sent) == 2
    invitee = await user_id_of(db, "new@example.com")
    assert (await accept(client, settings, invitee, old_token)).status_code == 404
    assert (await accept(client, settings, invitee, gotrue.last.token)).status_code == 200
    assert await role_of(db, team["org"], invitee) == "manager"


@pytest.mark.parametrize("known", [True, False])
async def test_inviting_again_at_once_waits_for_any_address(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    team: dict[str, UUID],
    gotrue: FakeAuth,
    known: bool,
):
    if known:
        await make_user(db, "person@example.com")
    assert (await invite(client, settings, team, "person@example.com")).status_code == 201
    again = await invite(client, settings, team, "person@example.com")
    assert again.status_code == 429
    assert again.json()["error"]["code"] == "invitation_recently_sent"
    assert 0 < again.json()["error"]["details"]["retry_after_seconds"] <= 60
    assert len(gotrue.sent) == 1


async def test_admins_list_and_revoke_open_invitations(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    team: dict[str, UUID],
    gotrue: FakeAuth,
):
    created = (await invite(client, settings, team, "new@example.com")).json()
    params = {"organization_id": str(team["org"])}
    listed = await client.get(
        f"{URL}/invitations", params=params, headers=auth(settings, team["admin"])
    )
    assert listed.status_code == 200
    assert listed.json() == {"data": [created]}
    for who in ("agent", "manager"):
        refused = await client.get(
            f"{URL}/invitations", params=params, headers=auth(settings, team[who])
        )
        assert refused.status_code == 403
    path = f"{URL}/invitations/{created['id']}"
    # below admin, invitations are invisible (RLS), so there is nothing to revoke
    assert (await client.delete(path, headers=auth(settings, team["agent"]))).status_code == 404
    assert (await client.delete(path, headers=auth(settings, team["admin"]))).status_code == 204
    assert (await client.delete(path, headers=auth(settings, team["admin"]))).status_code == 204
    listed = await client.get(
        f"{URL}/invitations", params=params, headers=auth(settings, team["owner"])
    )
    assert listed.json() == {"data": []}
    # revoked, the address can be invited afresh
    assert (await invite(client, settings, team, "new@example.com")).status_code == 201
    assert await db.fetchval("select count(*) from organization_invitations") == 2


async def test_an_expired_invitation_is_listed_as_expired(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    team: dict[str, UUID],
    gotrue: FakeAuth,
):
    await invite(client, settings, team, "new@example.com")
    await db.execute("update organization_invitations set expires_at = now()")
    listed = await client.get(
        f"{URL}/invitations",
        params={"organization_id": str(team["org"])},
        headers=auth(settings, team["admin"]),
    )
    assert [i["status"] for i in listed.json()["data"]] == ["expired"]


async def test_owner_invitations_belong_to_owners(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    team: dict[str, UUID],
    gotrue: FakeAuth,
):
    created = await invite(client, settings, team, "co@example.com", "owner", by="owner")
    assert created.status_code == 201
    path = f"{URL}/invitations/{created.json()['id']}"
    assert (await client.delete(path, headers=auth(settings, team["admin"]))).status_code == 403
    await let_resend(db)
    # nor may an admin downgrade it by inviting the address again
    downgrade = await invite(client, settings, team, "co@example.com", "agent")
    assert downgrade.status_code == 403
    invitee = await user_id_of(db, "co@example.com")
    assert (await accept(client, settings, invitee, gotrue.last.token)).status_code == 200
    assert await role_of(db, team["org"], invitee) == "owner"


@pytest.mark.parametrize(
    ("inviter", "role"), [("agent", "agent"), ("manager", "agent"), ("admin", "owner")]
)
async def test_who_may_invite_whom(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    team: dict[str, UUID],
    gotrue: FakeAuth,
    inviter: str,
    role: str,
):
    response = await invite(client, settings, team, "x@example.com", role, by=inviter)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert gotrue.sent == [], "no e-mail goes out for a refused invitation"
    assert await db.fetchval("select count(*) from organization_invitations") == 0


async def test_inviting_a_member_is_a_conflict_and_sends_nothing(
    client: httpx.AsyncClient,
    settings: Settings,
    team: dict[str, UUID],
    gotrue: FakeAuth,
):
    response = await invite(client, settings, team, "Owner@Acme.example")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_member"
    assert gotrue.sent == []


async def test_another_organizations_admin_cannot_see_or_revoke(
    client: httpx.AsyncClient,
    settings: Settings,
    db: Connection,
    team: dict[str, UUID],
    gotrue: FakeAuth,
):
    created = (await invite(client, settings, team, "new@example.com")).json()
    stranger = await make_user(db)
    await make_org(db, stranger)
    headers = auth(settings, stranger)
    listed = await client.get(
        f"{URL}/invitations", params={"organization_id": str(team["org"])}, headers=headers
    )
    assert listed.status_code == 404
    revoked = await client.delete(f"{URL}/invitations/{created['id']}", headers=headers)
    assert revoked.status_code == 404
    invited = await client.post(
        URL, json={"organization_id": str(team["org"]), "email": "y@example.com"}, headers=headers
    )
    assert invited.status_code == 404
    assert len(gotrue.sent) == 1
