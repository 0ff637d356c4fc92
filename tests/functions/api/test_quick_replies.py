"""/v1/quick-replies and personal quick replies (through PostgREST, under RLS): one
shortcut per scope, search by shortcut prefix or text, managers write the
organization's, any member their own, nobody another organization's."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from shared.db import Connection
from shared.runtime import Runtime
from tests.functions.api.conftest import Tenant, error_of
from tests.support import as_, member, principal

PERSONAL = (
    "insert into quick_replies (organization_id, owner_user_id, shortcut, body)"
    " values ($1, $2, $3, $4) returning id"
)


async def test_the_organizations_quick_replies_one_shortcut_each_searched_by_prefix_or_text(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, db: Connection
):
    for shortcut, body in [
        ("/refund", "Refunds take 5 days, {{ contact.name | default('there') }}"),
        ("/refund-eu", "EU refunds: 14 days"),
        ("/hours", "We answer 9-17, weekdays"),
    ]:
        created = await api.post(
            "/v1/quick-replies", json={"shortcut": shortcut, "body": body}, headers=tenant.headers()
        )
        assert created.status_code == 201, created.text
    duplicate = await api.post(
        "/v1/quick-replies", json={"shortcut": "/refund", "body": "x"}, headers=tenant.headers()
    )
    assert duplicate.status_code == 409
    # the same shortcut in another organization is theirs to have
    theirs = await api.post(
        "/v1/quick-replies", json={"shortcut": "/refund", "body": "x"}, headers=other.headers()
    )
    assert theirs.status_code == 201

    async def search(q: str | None, who: Tenant = tenant) -> list[str]:
        params = {"q": q} if q is not None else {}
        found = await api.get(
            "/v1/quick-replies", params=params, headers=who.headers(read_only=True)
        )
        assert found.status_code == 200, found.text
        return [r["shortcut"] for r in found.json()]

    assert await search("/ref") == ["/refund", "/refund-eu"]
    assert await search("/REFUND-") == ["/refund-eu"]
    assert await search("14 DAYS") == ["/refund-eu"]
    assert await search("50%_") == []  # LIKE's wildcards are text here
    assert await search(None) == ["/hours", "/refund", "/refund-eu"]
    assert await search(None, other) == ["/refund"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"shortcut": "refund", "body": "x"}, "shortcut"),
        ({"shortcut": "/Has Space", "body": "x"}, "shortcut"),
        ({"shortcut": "/ok", "body": ""}, "body"),
        ({"shortcut": "/ok", "body": "Hi {{ contact.name"}, "template syntax error"),
    ],
)
async def test_bad_quick_replies_are_422s_naming_the_problem_and_save_nothing(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection, body: dict[str, str], words: str
):
    response = await api.post("/v1/quick-replies", json=body, headers=tenant.headers())
    assert response.status_code == 422
    assert words in str(error_of(response))
    assert await db.fetchval("select count(*) from quick_replies") == 0


async def test_managers_write_the_organizations_and_any_member_their_own(
    api: httpx.AsyncClient, tenant: Tenant, db: Connection, runtime: Runtime
):
    read_only = await api.post(
        "/v1/quick-replies",
        json={"shortcut": "/a", "body": "x"},
        headers=tenant.headers(read_only=True),
    )
    assert read_only.status_code == 403
    org_wide = (
        await api.post(
            "/v1/quick-replies",
            json={"shortcut": "/refund", "body": "Org"},
            headers=tenant.headers(),
        )
    ).json()
    agent, teammate = principal(tenant.agent), principal(await member(db, tenant.org, "agent"))
    manager = principal(await member(db, tenant.org, "manager"))

    # an agent keeps a /refund of their own beside the organization's, once
    await as_(runtime, agent, PERSONAL, tenant.org, tenant.agent, "/refund", "Mine")
    with pytest.raises(asyncpg.UniqueViolationError):
        await as_(runtime, agent, PERSONAL, tenant.org, tenant.agent, "/refund", "Again")
    # … but cannot write the organization's, nor one in a teammate's name
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_(runtime, agent, PERSONAL, tenant.org, None, "/new", "x")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_(runtime, agent, PERSONAL, tenant.org, teammate.user_id, "/new", "x")
    assert (
        await as_(
            runtime,
            agent,
            "update quick_replies set body = 'x' where owner_user_id is null returning id",
        )
        == []
    )
    # a manager writes the organization's
    await as_(runtime, manager, PERSONAL, tenant.org, None, "/hours", "9-17")

    def bodies(rows: list[asyncpg.Record]) -> list[str]:
        return sorted(r["body"] for r in rows)

    assert bodies(await as_(runtime, agent, "select body from quick_replies")) == [
        "9-17",
        "Mine",
        "Org",
    ]
    assert bodies(await as_(runtime, teammate, "select body from quick_replies")) == ["9-17", "Org"]
    # an API key sees the organization's only
    listed = await api.get("/v1/quick-replies", headers=tenant.headers())
    assert sorted(r["body"] for r in listed.json()) == ["9-17", "Org"]

    patched = await api.patch(
        f"/v1/quick-replies/{org_wide['id']}", json={"shortcut": "/hours"}, headers=tenant.headers()
    )
    assert patched.status_code == 409
    gone = await api.delete(f"/v1/quick-replies/{org_wide['id']}", headers=tenant.headers())
    assert gone.status_code == 204
    again = await api.delete(f"/v1/quick-replies/{org_wide['id']}", headers=tenant.headers())
    assert again.status_code == 404


async def test_search_at_ten_thousand_replies_uses_the_indexes(
    tenant: Tenant, db: Connection, runtime: Runtime
):
    await db.execute(
        "insert into quick_replies (organization_id, shortcut, body)"
        " select $1, '/r' || i, 'Reply number ' || i || ' about shipping'"
        " from generate_series(1, 10000) i",
        tenant.org,
    )
    await db.execute("analyze quick_replies")
    agent = principal(tenant.agent)
    prefix = await as_(runtime, agent, "select * from search_quick_replies($1, '/R99')", tenant.org)
    assert len(prefix) == 20 and all(r["shortcut"].startswith("/r99") for r in prefix)
    text = await as_(
        runtime, agent, "select * from search_quick_replies($1, 'number 4242 ')", tenant.org
    )
    assert [r["shortcut"] for r in text] == ["/r4242"]

    # the prefix search the function runs (as definer, past RLS) walks the index; at
    # this size a text search reads the organization's rows (the trigram index pays
    # off on larger tables)
    plan = await db.fetch(
        "explain select id from quick_replies q where q.organization_id = $1"
        " and q.owner_user_id is null and q.shortcut like '/r99%' limit 20",
        tenant.org,
    )
    assert "quick_replies_shortcut_prefix_idx" in "\n".join(r[0] for r in plan)
