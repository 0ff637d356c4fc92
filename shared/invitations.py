"""Invitations: an admin invites an address with a role; the person joins by accepting.

The token (256 random bits) goes only into the e-mail; the database keeps its
SHA-256. Every write is a security-definer function that checks roles and states
again (supabase/migrations/20261125090000_tenancy.sql). The checks here come
first, so that no e-mail goes out for an invitation that would be refused, and
so the caller gets an error that says why. Every function runs inside the
caller's RLS transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

from shared import members
from shared.db import Connection
from shared.errors import AppError, Conflict, Forbidden, NotFound, RateLimited
from shared.settings import Settings

TOKEN_PARAM = "invitation_token"
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{20,128}$"

INVITATION_COLUMNS = """
  i.id, i.organization_id, i.email, i.role::text as role, i.invited_by,
  i.created_at, i.sent_at, i.expires_at,
  case when i.expires_at <= now() then 'expired' else 'pending' end as status
"""
OPEN = "i.accepted_at is null and i.revoked_at is null"


def new_token() -> tuple[str, bytes]:
    """A token for the e-mail and the hash the database keeps."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def accept_link(settings: Settings, token: str) -> str:
    """The page Supabase Auth sends the invitee to, carrying the token."""
    parts = urlsplit(settings.invitation_redirect_url)
    query = urlencode([*parse_qsl(parts.query), (TOKEN_PARAM, token)])
    return urlunsplit(parts._replace(query=query))


async def check_can_invite(
    *, conn: Connection, organization_id: UUID, email: str, role: members.Role, resend_seconds: int
) -> None:
    """Everything that would refuse the invitation, before any e-mail goes out."""
    caller = await members.require_role(
        conn=conn, organization_id=organization_id, at_least="admin"
    )
    members.check_owner_rule(caller, role)
    open_row = await conn.fetchrow(
        "select i.role::text as role, extract(epoch from now() - i.sent_at) as age"
        f" from public.organization_invitations i where i.organization_id = $1 and i.email = $2"
        f" and {OPEN}",
        organization_id,
        email,
    )
    if open_row is not None:
        members.check_owner_rule(caller, open_row["role"])
        wait = resend_seconds - int(open_row["age"])
        if wait > 0:
            # The same pace for every address, known to Supabase Auth or not.
            raise RateLimited(
                "An invitation was just sent to this address; try again shortly",
                code="invitation_recently_sent",
                details={"retry_after_seconds": wait},
            )
    is_member = await conn.fetchval(
        "select exists(select 1 from app.member_directory($1) d where lower(d.email) = $2)",
        organization_id,
        email,
    )
    if is_member:
        raise Conflict("This person is already a member", code="already_member")


async def create(
    *,
    conn: Connection,
    organization_id: UUID,
    email: str,
    role: members.Role,
    token_digest: bytes,
    valid_for: timedelta,
) -> dict[str, Any]:
    """Creates the open invitation of `email`, or refreshes it (new token and expiry)."""
    row = await conn.fetchrow(
        f"select {INVITATION_COLUMNS}"
        " from app.create_invitation($1, $2, $3::public.member_role, $4, $5) i",
        organization_id,
        email,
        role,
        token_digest,
        valid_for,
    )
    assert row is not None  # the function returns its row or raises
    return dict(row)


async def list_open(*, conn: Connection, organization_id: UUID) -> list[dict[str, Any]]:
    await members.require_role(conn=conn, organization_id=organization_id, at_least="admin")
    rows = await conn.fetch(
        f"select {INVITATION_COLUMNS} from public.organization_invitations i"
        f" where i.organization_id = $1 and {OPEN} order by i.created_at",
        organization_id,
    )
    return [dict(r) for r in rows]


async def revoke(*, conn: Connection, invitation_id: UUID) -> None:
    # RLS shows an invitation to its organization's admins only: anyone else gets a 404.
    row = await conn.fetchrow(
        "select i.organization_id, i.role::text as role, i.accepted_at"
        " from public.organization_invitations i where i.id = $1",
        invitation_id,
    )
    if row is None:
        raise NotFound("No such invitation", code="invitation_not_found")
    caller = await members.require_role(
        conn=conn, organization_id=row["organization_id"], at_least="admin"
    )
    members.check_owner_rule(caller, row["role"])
    if row["accepted_at"] is not None:
        raise Conflict(
            "This invitation was already accepted; remove the member instead",
            code="invitation_already_accepted",
        )
    await conn.execute("select app.revoke_invitation($1)", invitation_id)


_REFUSALS: dict[str, tuple[type[AppError], str, str]] = {
    "not_found": (NotFound, "invitation_not_found", "No such invitation"),
    "wrong_user": (
        Forbidden,
        "invitation_wrong_user",
        "This invitation was sent to another e-mail address; sign in with that address",
    ),
    "revoked": (Conflict, "invitation_revoked", "This invitation was revoked"),
    "accepted": (Conflict, "invitation_already_accepted", "This invitation was already accepted"),
    "expired": (Conflict, "invitation_expired", "This invitation has expired; ask for a new one"),
}


async def accept(*, conn: Connection, token: str) -> dict[str, Any]:
    """The signed-in caller joins with the invitation's role; returns their membership."""
    row = await conn.fetchrow(
        "select outcome, organization_id from app.accept_invitation($1)", token_hash(token)
    )
    assert row is not None  # the function always answers one row
    if row["outcome"] != "joined":
        error, code, message = _REFUSALS[row["outcome"]]
        raise error(message, code=code)
    user_id: UUID = await conn.fetchval("select auth.uid()")
    return await members.get_member(
        conn=conn, organization_id=row["organization_id"], user_id=user_id
    )
