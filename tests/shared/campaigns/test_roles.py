"""Who may do what, through PostgREST (RLS): members read campaigns and their recipients;
only managers and above write campaigns; nobody but the service writes recipients."""

from __future__ import annotations

import asyncpg
import pytest

from shared.db import Connection
from shared.runtime import Runtime
from tests.support import as_, make_channel_account, make_contact, make_org, make_user, member
from tests.support import principal as user

INSERT = (
    "insert into campaigns (organization_id, channel_account_id, name, body)"
    " values ($1, $2, 'Sale', 'Hi') returning id"
)


async def test_members_read_managers_write_and_recipients_are_the_services(
    runtime: Runtime, db: Connection
) -> None:
    owner = await make_user(db)
    org = await make_org(db, owner)
    account = await make_channel_account(db, org)
    agent, manager = await member(db, org, "agent"), await member(db, org, "manager")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_(runtime, user(agent), INSERT, org, account)
    (made,) = await as_(runtime, user(manager), INSERT, org, account)
    assert [r["id"] for r in await as_(runtime, user(agent), "select id from campaigns")] == [
        made["id"]
    ]
    updated = await as_(
        runtime,
        user(agent),
        "update campaigns set name = 'Mine' where id = $1 returning id",
        made["id"],
    )
    assert updated == []
    contact = await make_contact(db, org, phone="+4915112345678")
    for who in (agent, manager, owner):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_(
                runtime,
                user(who),
                "insert into campaign_recipients (organization_id, campaign_id, contact_id)"
                " values ($1, $2, $3)",
                org,
                made["id"],
                contact,
            )
