"""Who may do what inside one organization: the role rules of the CRM policies."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import pytest

from shared.db import Connection
from shared.runtime import Runtime
from tests.support import as_, issue_key, make_contact, make_org, make_user, member, principal
from tests.support_crm import default_pipeline, make_note, make_tag, make_task


@pytest.fixture
async def org(db: Connection) -> dict[str, UUID]:
    owner = await make_user(db)
    org_id = await make_org(db, owner)
    return {
        "org": org_id,
        "owner": owner,
        "manager": await member(db, org_id, "manager"),
        "agent": await member(db, org_id, "agent"),
        "other_agent": await member(db, org_id, "agent"),
    }


async def make_pipeline(db: Connection, org: UUID) -> UUID:
    pipeline: UUID = await db.fetchval(
        "insert into pipelines (organization_id, name) values ($1, 'Partners') returning id", org
    )
    return pipeline


async def test_agents_cannot_delete_pipelines_managers_can(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    pipeline = await make_pipeline(db, org["org"])
    deleted = await as_(
        runtime,
        principal(org["agent"]),
        "delete from pipelines where id = $1 returning id",
        pipeline,
    )
    assert deleted == []
    assert await db.fetchval("select count(*) from pipelines where id = $1", pipeline) == 1
    deleted = await as_(
        runtime,
        principal(org["manager"]),
        "delete from pipelines where id = $1 returning id",
        pipeline,
    )
    assert [r["id"] for r in deleted] == [pipeline]


async def test_only_managers_configure_pipelines_stages_and_fields(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    pipeline = await default_pipeline(db, org["org"])
    writes = [
        ("insert into pipelines (organization_id, name) values ($1, 'X')", (org["org"],)),
        (
            "insert into stages (organization_id, pipeline_id, name) values ($1, $2, 'X')",
            (org["org"], pipeline),
        ),
        (
            "insert into custom_field_definitions (organization_id, entity, key, label, type)"
            " values ($1, 'deal', 'x', 'X', 'text')",
            (org["org"],),
        ),
    ]
    for sql, args in writes:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_(runtime, principal(org["agent"]), sql, *args)
        await as_(runtime, principal(org["manager"]), sql, *args)
    renamed = await as_(
        runtime,
        principal(org["agent"]),
        "update stages set name = 'Hot' where pipeline_id = $1 returning id",
        pipeline,
    )
    assert renamed == []


async def test_agents_make_tags_and_tag_things_managers_rename_and_delete_tags(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    agent = principal(org["agent"])
    contact = await make_contact(db, org["org"])
    [row] = await as_(
        runtime,
        agent,
        "insert into tags (organization_id, name) values ($1, 'VIP') returning id",
        org["org"],
    )
    await as_(
        runtime,
        agent,
        "insert into contact_tags (organization_id, contact_id, tag_id) values ($1, $2, $3)",
        org["org"],
        contact,
        row["id"],
    )
    with pytest.raises(asyncpg.UniqueViolationError):
        await as_(
            runtime,
            agent,
            "insert into tags (organization_id, name) values ($1, 'vip')",
            org["org"],
        )
    assert await as_(runtime, agent, "delete from tags where id = $1 returning id", row["id"]) == []
    removed = await as_(
        runtime, principal(org["manager"]), "delete from tags where id = $1 returning id", row["id"]
    )
    assert len(removed) == 1
    assert await db.fetchval("select count(*) from contact_tags") == 0


async def test_authors_edit_and_delete_their_own_notes_managers_any(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    contact = await make_contact(db, org["org"])
    [note] = await as_(
        runtime,
        principal(org["agent"]),
        "insert into notes (organization_id, contact_id, body) values ($1, $2, 'Called')"
        " returning id, author_id",
        org["org"],
        contact,
    )
    assert note["author_id"] == org["agent"]
    edit = "update notes set body = 'Edited' where id = $1 returning id"
    assert await as_(runtime, principal(org["other_agent"]), edit, note["id"]) == []
    assert (
        await as_(
            runtime,
            principal(org["other_agent"]),
            "delete from notes where id = $1 returning id",
            note["id"],
        )
        == []
    )
    assert len(await as_(runtime, principal(org["agent"]), edit, note["id"])) == 1
    assert len(await as_(runtime, principal(org["manager"]), edit, note["id"])) == 1
    with pytest.raises(asyncpg.PostgresError, match="author_id: the author of a note"):
        await as_(
            runtime,
            principal(org["manager"]),
            "update notes set author_id = $2 where id = $1",
            note["id"],
            org["manager"],
        )
    # nobody writes a note in someone else's name
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_(
            runtime,
            principal(org["agent"]),
            "insert into notes (organization_id, contact_id, body, author_id)"
            " values ($1, $2, 'x', $3)",
            org["org"],
            contact,
            org["other_agent"],
        )


async def test_creators_delete_their_own_tasks_managers_any(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    [task] = await as_(
        runtime,
        principal(org["agent"]),
        "insert into tasks (organization_id, title) values ($1, 'Call back') returning id",
        org["org"],
    )
    delete = "delete from tasks where id = $1 returning id"
    assert await as_(runtime, principal(org["other_agent"]), delete, task["id"]) == []
    # ... though any agent may work on it (reassign, complete)
    done = await as_(
        runtime,
        principal(org["other_agent"]),
        "update tasks set status = 'done' where id = $1 returning completed_at",
        task["id"],
    )
    assert done[0]["completed_at"] is not None
    assert len(await as_(runtime, principal(org["agent"]), delete, task["id"])) == 1
    other = await make_task(db, org["org"])
    assert len(await as_(runtime, principal(org["manager"]), delete, other)) == 1


async def test_agents_cannot_delete_records_managers_can(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    company = await db.fetchval(
        "insert into companies (organization_id, name) values ($1, 'Acme') returning id",
        org["org"],
    )
    delete = "delete from companies where id = $1 returning id"
    assert await as_(runtime, principal(org["agent"]), delete, company) == []
    assert len(await as_(runtime, principal(org["manager"]), delete, company)) == 1


async def test_api_keys_write_records_as_managers_or_not_at_all(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    _, writer = await issue_key(runtime, org["org"], org["owner"], ["read", "write"])
    _, reader = await issue_key(runtime, org["org"], org["owner"], ["read"])
    pipeline = await make_pipeline(db, org["org"])
    contact = await make_contact(db, org["org"])
    note = await make_note(db, org["org"], contact_id=contact, author_id=org["agent"])
    tag = await make_tag(db, org["org"])

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_(
            runtime,
            reader,
            "insert into tasks (organization_id, title) values ($1, 'x')",
            org["org"],
        )
    assert await as_(runtime, reader, "delete from tags where id = $1 returning id", tag) == []
    assert len(await as_(runtime, reader, "select id from notes where id = $1", note)) == 1

    [api_note] = await as_(
        runtime,
        writer,
        "insert into notes (organization_id, contact_id, body) values ($1, $2, 'via API')"
        " returning author_id",
        org["org"],
        contact,
    )
    assert api_note["author_id"] is None
    assert (
        len(
            await as_(
                runtime, writer, "update notes set body = 'x' where id = $1 returning id", note
            )
        )
        == 1
    )
    assert await as_(runtime, writer, "delete from tags where id = $1 returning id", tag) != []
    # managers configure pipelines; no scope lets a key do it
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_(runtime, writer, "delete from pipelines where id = $1", pipeline)


async def test_nobody_creates_records_in_someone_elses_name(
    runtime: Runtime, db: Connection, org: dict[str, UUID]
):
    for sql in (
        "insert into deals (organization_id, title, created_by) values ($1, 'x', $2)",
        "insert into tasks (organization_id, title, created_by) values ($1, 'x', $2)",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_(runtime, principal(org["agent"]), sql, org["org"], org["manager"])
    [deal] = await as_(
        runtime,
        principal(org["agent"]),
        "insert into deals (organization_id, title) values ($1, 'Mine') returning id, created_by",
        org["org"],
    )
    assert deal["created_by"] == org["agent"]
    with pytest.raises(asyncpg.PostgresError, match="created_by: the creator of a deal"):
        await as_(
            runtime,
            principal(org["manager"]),
            "update deals set created_by = $2 where id = $1",
            deal["id"],
            org["manager"],
        )
