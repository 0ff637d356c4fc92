"""The SPA's documented inbox queries (docs/inbox-queries.md) under RLS as an agent:
the rows they return and the plans they get; the search RPCs; JIT off for API roles.

The queries are the PostgREST SQL bench/inbox.py measures at scale. Plans are read
with `enable_seqscan = off`, set for the transaction: on a few dozen rows a sequential
scan is truly the cheapest plan, so the planner would show nothing else. What these
tests hold is that an index serving the query's filter *and* order exists and is
usable under RLS (no Sort over the list), which is what breaks a query at scale;
bench/inbox.py checks the plans the planner picks on a million messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import pytest
import pytest_asyncio

from bench.inbox_queries import (
    CARELESS_ORDER,
    CARELESS_THREAD,
    DOCUMENTED_KEYSET,
    DOCUMENTED_ORDER,
    DOCUMENTED_THREAD,
    ORG,
    inbox_page,
    thread_page,
)
from shared.auth import AnonPrincipal, Principal
from shared.db import Connection
from shared.runtime import Runtime
from tests.support import (
    as_,
    make_channel_account,
    make_contact,
    make_org,
    make_user,
    member,
    module_runtime_fixtures,
    principal,
)

T0 = datetime(2026, 6, 1, 9, tzinfo=UTC)
# Organization A: enough rows for the plans of the real size (B: a few, to be kept out).
CONVERSATIONS = 300
MESSAGES = 6
LONG_THREAD = 400

# One inbox for the module, built once in a database of its own, and one warm pool:
# its tests read, and add only rows no other test counts.
# One worker runs the whole module, so its module-wide setup runs once.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("test_inbox_reads")]


@dataclass
class Inbox:
    org_a: UUID
    org_b: UUID
    agent_a: UUID
    agent_b: UUID
    account_a: UUID
    conversations_a: list[UUID]  # newest first


async def _fill(
    db: Connection, org: UUID, account: UUID, tag: str, conversations: int, messages: int
) -> None:
    """Conversation i of contact i has `messages` messages, its newest at T0 + i minutes;
    one conversation in 40 is about a refund."""
    await db.execute(
        "insert into public.contacts (organization_id, name, email)"
        " select $1, $2 || ' Person ' || i, 'p' || i || '@' || $2 || '.example'"
        " from generate_series(0, $3 - 1) i",
        org,
        tag,
        conversations,
    )
    await db.execute(
        "insert into public.conversations (organization_id, contact_id, channel_account_id,"
        " status, last_message_at)"
        " select $1, c.id, $2, case when i % 3 = 0 then 'resolved' else 'open' end::"
        "public.conversation_status, $3::timestamptz + i * interval '1 minute'"
        " from public.contacts c, cast(split_part(c.name, ' ', 3) as int) i"
        " where c.organization_id = $1",
        org,
        account,
        T0,
    )
    await db.execute(
        "insert into public.messages (organization_id, conversation_id, channel_account_id,"
        " direction, sender_type, body, status, created_at)"
        " select $1, v.id, $2, 'inbound', 'contact',"
        " $3 || ' message ' || j || ' of ' || i"
        " || case when i % 40 = 0 then ' about a REFUND' else '' end, 'received',"
        " v.last_message_at - ($4 - 1 - j) * interval '10 seconds'"
        " from public.conversations v join public.contacts c on c.id = v.contact_id,"
        " cast(split_part(c.name, ' ', 3) as int) i, generate_series(0, $4 - 1) j"
        " where v.organization_id = $1",
        org,
        account,
        tag,
        messages,
    )


runtime, db = module_runtime_fixtures()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def inbox(db: Connection) -> Inbox:
    owner_a, owner_b = await make_user(db), await make_user(db)
    org_a, org_b = await make_org(db, owner_a), await make_org(db, owner_b)
    account_a = await make_channel_account(db, org_a)
    await _fill(db, org_a, account_a, "alpha", CONVERSATIONS, MESSAGES)
    await _fill(db, org_b, await make_channel_account(db, org_b), "beta", 60, 2)
    # and one long thread, the newest conversation's, whose messages a page must not sort
    await db.execute(
        "insert into public.messages (organization_id, conversation_id, channel_account_id,"
        " direction, sender_type, body, status, created_at)"
        " select v.organization_id, v.id, v.channel_account_id, 'outbound', 'user',"
        " 'older ' || k, 'read', v.last_message_at - interval '1 hour' - k * interval '1 second'"
        " from public.conversations v, generate_series(1, $2) k"
        " where v.organization_id = $1 order by v.last_message_at desc limit $2",
        org_a,
        LONG_THREAD,
    )
    await db.execute("vacuum analyze")
    newest_first = await db.fetch(
        "select id from public.conversations where organization_id = $1"
        " order by last_message_at desc",
        org_a,
    )
    return Inbox(
        org_a=org_a,
        org_b=org_b,
        agent_a=await member(db, org_a, "agent"),
        agent_b=await member(db, org_b, "agent"),
        account_a=account_a,
        conversations_a=[r["id"] for r in newest_first],
    )


async def body_of(runtime: Runtime, who: Principal, sql: str, *args: Any) -> list[dict[str, Any]]:
    rows = await as_(runtime, who, sql, *args)
    page: list[dict[str, Any]] = json.loads(rows[0]["body"])
    return page


async def plan_of(
    runtime: Runtime, who: Principal, sql: str, *args: Any, generic: str | None = None
) -> dict[str, Any]:
    """EXPLAIN (FORMAT JSON) as `who`; with `generic` (the parameters' types), the plan of
    a prepared statement that does not know its parameters, as a cached plan is."""
    async with runtime.db.user_tx(who) as conn:
        await conn.execute("set local enable_seqscan = off")
        if generic is None:
            plan = await conn.fetchval(f"explain (format json) {sql}", *args)
        else:
            await conn.execute("set local plan_cache_mode = force_generic_plan")
            await conn.execute(f"prepare q ({generic}) as {sql}")
            literals = ", ".join(f"'{a}'" for a in args)
            plan = await conn.fetchval(f"explain (format json) execute q ({literals})")
            await conn.execute("deallocate q")
    return first_plan(plan)


def first_plan(explained: Any) -> dict[str, Any]:
    """The plan of EXPLAIN (FORMAT JSON): decoded already by the runtime's pool."""
    decoded = json.loads(explained) if isinstance(explained, str) else explained
    root: dict[str, Any] = decoded[0]["Plan"]
    return root


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += nodes(child)
    return found


def index_scans(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["Index Name"]: n for n in nodes(plan) if "Index Name" in n}


def sorts(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in nodes(plan) if n["Node Type"] in ("Sort", "Incremental Sort")]


# ---- rows ---------------------------------------------------------------------------------------


async def test_the_inbox_page_is_the_agents_organization_newest_first_with_contact_and_last_message(
    runtime: Runtime, inbox: Inbox
):
    agent = principal(inbox.agent_a)
    page = await body_of(runtime, agent, inbox_page(ORG, DOCUMENTED_ORDER), inbox.org_a)
    assert [UUID(c["id"]) for c in page] == inbox.conversations_a[:50]
    for conversation in page:
        # conversation i is contact i's, and its last message is the tenth
        i = conversation["contact"]["name"].removeprefix("alpha Person ")
        [last] = conversation["messages"]
        assert last["body"].startswith(f"alpha message {MESSAGES - 1} of {i}")
    # An agent sees every conversation of the organization (as today), none of another:
    # naming the other organization, or none at all, changes nothing.
    assert await body_of(runtime, agent, inbox_page(ORG, DOCUMENTED_ORDER), inbox.org_b) == []
    careless = await body_of(runtime, agent, inbox_page("true", CARELESS_ORDER))
    assert [UUID(c["id"]) for c in careless] == inbox.conversations_a[:50]
    theirs = await body_of(runtime, principal(inbox.agent_b), inbox_page("true", CARELESS_ORDER))
    assert len(theirs) == 50
    assert {UUID(c["id"]) for c in theirs}.isdisjoint(inbox.conversations_a)


async def test_the_keyset_pages_walk_the_whole_inbox_once(runtime: Runtime, inbox: Inbox):
    agent = principal(inbox.agent_a)
    first = await body_of(runtime, agent, inbox_page(ORG, DOCUMENTED_ORDER), inbox.org_a)
    cut = first[9]
    rest = await body_of(
        runtime,
        agent,
        inbox_page(DOCUMENTED_KEYSET, DOCUMENTED_ORDER),
        inbox.org_a,
        datetime.fromisoformat(cut["last_message_at"]),
        UUID(cut["id"]),
    )
    assert [UUID(c["id"]) for c in rest] == inbox.conversations_a[10:60]


async def test_a_thread_is_its_conversations_messages_newest_first(runtime: Runtime, inbox: Inbox):
    agent = principal(inbox.agent_a)
    thread = inbox.conversations_a[0]
    page = await body_of(runtime, agent, thread_page(DOCUMENTED_THREAD), inbox.org_a, thread)
    newest = CONVERSATIONS - 1
    assert [m["body"] for m in page] == [
        *(f"alpha message {j} of {newest}" for j in reversed(range(MESSAGES))),
        *(f"older {k}" for k in range(1, 51 - MESSAGES)),
    ]
    careless = await body_of(runtime, agent, thread_page(CARELESS_THREAD), thread)
    assert careless == page
    assert (
        await body_of(runtime, principal(inbox.agent_b), thread_page(CARELESS_THREAD), thread) == []
    )


# ---- plans --------------------------------------------------------------------------------------


async def test_the_inbox_walks_the_recency_index_without_sorting(runtime: Runtime, inbox: Inbox):
    agent = principal(inbox.agent_a)
    first = await body_of(runtime, agent, inbox_page(ORG, DOCUMENTED_ORDER), inbox.org_a)
    cursor = (datetime.fromisoformat(first[9]["last_message_at"]), UUID(first[9]["id"]))
    cases = [
        (inbox_page(ORG, DOCUMENTED_ORDER), (inbox.org_a,)),
        (
            inbox_page(f'{ORG} and "conversations"."channel_account_id" = $2', DOCUMENTED_ORDER),
            (inbox.org_a, inbox.account_a),
        ),
        (
            inbox_page(f'{ORG} and "conversations"."status" = $2', DOCUMENTED_ORDER),
            (inbox.org_a, "open"),
        ),
        (inbox_page(DOCUMENTED_KEYSET, DOCUMENTED_ORDER), (inbox.org_a, *cursor)),
    ]
    for sql, args in cases:
        plan = await plan_of(runtime, agent, sql, *args)
        scans = index_scans(plan)
        recent = scans["conversations_recent_idx"]
        assert "organization_id" in recent["Index Cond"]
        assert sorts(plan) == [], sql
        # each embedded last message is one step back along the thread's index
        assert "messages_conversation_idx" in scans
        if "<=" in sql:
            assert "last_message_at <=" in recent["Index Cond"]


async def test_a_generic_plan_of_a_keyset_page_sorts_so_the_api_role_plans_each_request(
    db: Connection, runtime: Runtime, inbox: Inbox
):
    """Why authenticated has plan_cache_mode = force_custom_plan: the plan PostgreSQL
    would cache for PostgREST's prepared statement, not knowing the cursor, sorts."""
    agent = principal(inbox.agent_a)
    first = await body_of(runtime, agent, inbox_page(ORG, DOCUMENTED_ORDER), inbox.org_a)
    cursor = (datetime.fromisoformat(first[9]["last_message_at"]), UUID(first[9]["id"]))
    sql = inbox_page(DOCUMENTED_KEYSET, DOCUMENTED_ORDER)
    generic = await plan_of(
        runtime, agent, sql, inbox.org_a, *cursor, generic="uuid, timestamptz, uuid"
    )
    assert sorts(generic) != []
    settings = await role_settings(db)
    assert "plan_cache_mode=force_custom_plan" in settings["authenticated"]


async def test_a_thread_reads_its_index_backwards_even_when_the_org_is_left_to_rls(
    runtime: Runtime, inbox: Inbox
):
    agent = principal(inbox.agent_a)
    thread = inbox.conversations_a[0]
    documented = await plan_of(runtime, agent, thread_page(DOCUMENTED_THREAD), inbox.org_a, thread)
    scan = index_scans(documented)["messages_conversation_idx"]
    assert scan["Scan Direction"] == "Backward"
    assert sorts(documented) == []
    # the read policy is an index condition (= ANY of the caller's organizations), so
    # the careless shape finds the thread by index too (then sorts its few messages)
    careless = await plan_of(runtime, agent, thread_page(CARELESS_THREAD), thread)
    cond = index_scans(careless)["messages_conversation_idx"]["Index Cond"]
    assert "organization_id = ANY" in cond and "conversation_id =" in cond


async def test_the_search_conditions_match_the_trigram_indexes(db: Connection):
    """The search functions' ILIKE conditions (on the same expressions) can be answered
    by the trigram indexes: with the other scans off, the plan is the index or nothing.
    Which scan wins on a million rows is bench/inbox.py's to show."""
    async with db.transaction():
        await db.execute("set local enable_seqscan = off")
        await db.execute("set local enable_indexscan = off")
        for sql, index in (
            ("select id from public.messages m where m.body ilike $1", "messages_body_trgm_idx"),
            (
                "select id from public.contacts c where (coalesce(c.name, '') || ' '"
                " || coalesce(c.email, '') || ' ' || coalesce(c.phone, '')) ilike $1",
                "contacts_search_trgm_idx",
            ),
        ):
            plan = first_plan(await db.fetchval(f"explain (format json) {sql}", "%refund%"))
            assert list(index_scans(plan)) == [index], plan


# ---- the search RPCs ------------------------------------------------------------------------


async def test_search_messages_finds_the_organizations_messages_newest_first(
    runtime: Runtime, inbox: Inbox
):
    agent = principal(inbox.agent_a)
    rows = await as_(
        runtime, agent, "select * from public.search_messages($1, ' refund ')", inbox.org_a
    )
    assert {r["organization_id"] for r in rows} == {inbox.org_a}
    assert len(rows) == 8 * MESSAGES  # conversations 0, 40, … 280
    assert all("REFUND" in r["body"] for r in rows)
    assert [r["created_at"] for r in rows] == sorted((r["created_at"] for r in rows), reverse=True)
    # the next page starts after the last row seen
    page = await as_(
        runtime,
        agent,
        "select * from public.search_messages($1, 'refund', max_rows => 5)",
        inbox.org_a,
    )
    after = await as_(
        runtime,
        agent,
        "select * from public.search_messages($1, 'refund', $2, $3, 5)",
        inbox.org_a,
        page[-1]["created_at"],
        page[-1]["id"],
    )
    assert [r["id"] for r in page + after] == [r["id"] for r in rows[:10]]
    # % and _ are the text's own, not wildcards
    assert (
        await as_(runtime, agent, "select * from public.search_messages($1, 'r_fund')", inbox.org_a)
        == []
    )


async def test_search_contacts_matches_name_email_or_phone(
    db: Connection, runtime: Runtime, inbox: Inbox
):
    await make_contact(db, inbox.org_a, name="Zed", phone="+15550001234")
    agent = principal(inbox.agent_a)
    for query, names in (
        ("PERSON 299", {"alpha Person 299"}),
        ("son 29", {f"alpha Person {i}" for i in (29, *range(290, 300))}),
        ("p2@alpha", {"alpha Person 2"}),
        ("0001234", {"Zed"}),
    ):
        rows = await as_(
            runtime, agent, "select * from public.search_contacts($1, $2)", inbox.org_a, query
        )
        assert {r["name"] for r in rows} == names


@pytest.mark.parametrize("function", ["search_messages", "search_contacts"])
async def test_search_gives_nothing_to_anyone_outside_the_organization(
    function: str, runtime: Runtime, inbox: Inbox
):
    sql = f"select * from public.{function}($1, 'alpha')"
    # another organization's agent naming this one: refused, nothing read
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="Not a member"):
        await as_(runtime, principal(inbox.agent_b), sql, inbox.org_a)
    # and searching their own organization finds only their own rows
    mine = await as_(runtime, principal(inbox.agent_b), sql, inbox.org_b)
    assert mine == []  # "alpha" is only in A's rows
    # anon may not call it at all
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for function"):
        await as_(runtime, AnonPrincipal(), sql, inbox.org_a)
    # no organization, or an unknown one, is the same refusal
    for org in (None, UUID(int=7)):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_(runtime, principal(inbox.agent_a), sql, org)


@pytest.mark.parametrize("query", ["ab", "  ab  ", "", "x" * 201])
async def test_search_refuses_a_query_too_short_or_too_long(
    query: str, runtime: Runtime, inbox: Inbox
):
    with pytest.raises(asyncpg.InvalidParameterValueError, match="3 to 200"):
        await as_(
            runtime,
            principal(inbox.agent_a),
            "select * from public.search_messages($1, $2)",
            inbox.org_a,
            query,
        )


# ---- settings --------------------------------------------------------------------------------


async def role_settings(db: Connection) -> dict[str, list[str]]:
    """ALTER ROLE … SET, which PostgREST applies to the role it switches to."""
    rows = await db.fetch(
        "select r.rolname, s.setconfig from pg_db_role_setting s"
        " join pg_roles r on r.oid = s.setrole where s.setdatabase = 0"
    )
    return {r["rolname"]: r["setconfig"] for r in rows}


async def test_the_api_roles_run_without_jit(db: Connection):
    settings = await role_settings(db)
    for role in ("anon", "authenticated", "service_role"):
        assert "jit=off" in settings[role], role
