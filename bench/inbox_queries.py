"""The inbox queries of bench/inbox.py as PostgREST sends them for supabase-js calls.

PostgREST wraps the read in a `pgrst_source` CTE and aggregates the page into one JSON
body; embedded resources are LEFT JOIN LATERAL subqueries over the foreign key
(to-one as row_to_json, to-many as json_agg with its own order and limit); filter
values are parameters; `.or(...)` becomes an OR of its conditions; an RPC is a call
in the FROM clause. Each query comes in the shape a careless SPA sends (the
organization left to RLS) and in the documented one (docs/inbox-queries.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

PAGE = 50
DEEP_PAGE = 100


@dataclass(frozen=True)
class Shape:
    label: str
    kind: str  # "careless" or "documented"
    rls_sql: str  # what the agent runs under RLS
    owner_sql: str  # the owner's counterpart (the same SQL, or the RPC's own query)
    args: tuple[Any, ...]
    same_answer: bool  # both callers must see the same rows (the query names the org)


def pgrst(source: str) -> str:
    """The statement PostgREST runs for a read: the page as one JSON body."""
    return (
        f"with pgrst_source as ({source})"
        " select null::bigint as total_result_set, pg_catalog.count(_postgrest_t) as page_total,"
        " coalesce(json_agg(_postgrest_t), '[]')::text as body"
        " from (select * from pgrst_source) _postgrest_t"
    )


def inbox_page(where: str, order: str, offset: int = 0) -> str:
    """select=id,status,…,contact:contacts(id,name,avatar_url),messages(body,direction,created_at)
    with .order('created_at', {referencedTable: 'messages', ascending: false})
    and .limit(1, {referencedTable: 'messages'})"""
    return pgrst(
        'select "conversations"."id", "conversations"."status", "conversations"."subject",'
        ' "conversations"."last_message_at", "conversations"."unread_count",'
        ' "conversations"."assignee_id", "conversations"."channel_account_id",'
        ' row_to_json("conversations_contact_1".*)::jsonb as "contact",'
        ' coalesce("conversations_messages_1"."conversations_messages_1", \'[]\') as "messages"'
        ' from "public"."conversations"'
        " left join lateral ("
        ' select "contacts_1"."id", "contacts_1"."name", "contacts_1"."avatar_url"'
        ' from "public"."contacts" as "contacts_1"'
        ' where "contacts_1"."organization_id" = "conversations"."organization_id"'
        ' and "contacts_1"."id" = "conversations"."contact_id"'
        ' ) as "conversations_contact_1" on true'
        " left join lateral ("
        ' select json_agg("conversations_messages_1")::jsonb as "conversations_messages_1"'
        ' from (select "messages_1"."body", "messages_1"."direction", "messages_1"."created_at"'
        ' from "public"."messages" as "messages_1"'
        ' where "messages_1"."organization_id" = "conversations"."organization_id"'
        ' and "messages_1"."conversation_id" = "conversations"."id"'
        ' order by "messages_1"."created_at" desc limit 1 offset 0'
        ' ) as "conversations_messages_1"'
        ' ) as "conversations_messages_1" on true'
        f" where {where} order by {order} limit {PAGE} offset {offset}"
    )


ORG = '"conversations"."organization_id" = $1'
CARELESS_ORDER = '"conversations"."last_message_at" desc'
DOCUMENTED_ORDER = '"conversations"."last_message_at" desc nulls last, "conversations"."id" asc'
CARELESS_KEYSET_ORDER = '"conversations"."last_message_at" desc, "conversations"."id" desc'
# .eq('organization_id', org).lte('last_message_at', at)
# .or(`last_message_at.lt.${at},and(last_message_at.eq.${at},id.gt.${id})`)
DOCUMENTED_KEYSET = (
    f'{ORG} and "conversations"."last_message_at" <= $2'
    ' and ("conversations"."last_message_at" < $2 or ("conversations"."last_message_at"'
    ' = $2 and "conversations"."id" > $3))'
)
THREAD_COLUMNS = (
    '"messages"."id", "messages"."direction", "messages"."body", "messages"."created_at"'
)
DOCUMENTED_THREAD = '"messages"."organization_id" = $1 and "messages"."conversation_id" = $2'
CARELESS_THREAD = '"messages"."conversation_id" = $1'


NEWEST_MESSAGES = '"messages"."created_at" desc, "messages"."id" desc'


def thread_page(where: str, order: str = NEWEST_MESSAGES) -> str:
    """from('messages').select('id,direction,body,created_at').order(…).limit(50)"""
    return pgrst(
        f'select {THREAD_COLUMNS} from "public"."messages"'
        f" where {where} order by {order} limit {PAGE} offset 0"
    )


def _twice(label: str, kind: str, sql: str, args: tuple[Any, ...], same: bool) -> Shape:
    return Shape(label, kind, sql, sql, args, same)


async def inbox_queries(
    pool: asyncpg.Pool,
    org: uuid.UUID,
    busy_account: uuid.UUID,
    thread: uuid.UUID,
    word: str,
    surname: str,
) -> list[Shape]:
    async with pool.acquire() as conn:
        total = await conn.fetchval(
            "select count(*) from conversations where organization_id = $1", org
        )
        skip = max(0, min((DEEP_PAGE - 1) * PAGE, total - PAGE)) - 1
        cursor = await conn.fetchrow(
            "select last_message_at, id from conversations where organization_id = $1"
            " order by last_message_at desc nulls last, id offset $2 limit 1",
            org,
            skip,
        )
        careless_cursor = await conn.fetchrow(
            "select last_message_at, id from conversations where organization_id = $1"
            " order by last_message_at desc, id desc offset $2 limit 1",
            org,
            skip,
        )
    page = "page 100" if skip == (DEEP_PAGE - 1) * PAGE - 1 else f"row {skip + 1:,}"
    shapes = [
        _twice(
            "inbox: 50 most recent, contact and last message",
            "careless",
            inbox_page("true", CARELESS_ORDER),
            (),
            False,
        ),
        _twice(
            "inbox: 50 most recent, contact and last message",
            "documented",
            inbox_page(ORG, DOCUMENTED_ORDER),
            (org,),
            True,
        ),
        _twice(
            "… of the channel account with 60% of the traffic",
            "careless",
            inbox_page('"conversations"."channel_account_id" = $1', CARELESS_ORDER),
            (busy_account,),
            False,
        ),
        _twice(
            "… of the channel account with 60% of the traffic",
            "documented",
            inbox_page(f'{ORG} and "conversations"."channel_account_id" = $2', DOCUMENTED_ORDER),
            (org, busy_account),
            True,
        ),
        _twice(
            "… status=open",
            "careless",
            inbox_page('"conversations"."status" = $1', CARELESS_ORDER),
            ("open",),
            False,
        ),
        _twice(
            "… status=open",
            "documented",
            inbox_page(f'{ORG} and "conversations"."status" = $2', DOCUMENTED_ORDER),
            (org, "open"),
            True,
        ),
        _twice(
            f"inbox {page}, keyset .or(…)",
            "careless",
            inbox_page(
                '("conversations"."last_message_at" < $1 or ("conversations"."last_message_at"'
                ' = $1 and "conversations"."id" < $2))',
                CARELESS_KEYSET_ORDER,
            ),
            (careless_cursor["last_message_at"], careless_cursor["id"]),
            False,
        ),
        _twice(
            f"inbox {page}, keyset .lte(…).or(…)",
            "documented",
            inbox_page(
                DOCUMENTED_KEYSET,
                DOCUMENTED_ORDER,
            ),
            (org, cursor["last_message_at"], cursor["id"]),
            True,
        ),
        _twice(
            f"inbox {page}, .range() offset",
            "careless",
            inbox_page(ORG, DOCUMENTED_ORDER, offset=skip + 1),
            (org,),
            True,
        ),
    ]
    shapes += [
        _twice(
            "thread: latest 50 messages, .eq(conversation_id)",
            "careless",
            thread_page(CARELESS_THREAD, order='"messages"."created_at" desc'),
            (thread,),
            True,
        ),
        _twice(
            "thread: latest 50 messages, .eq(conversation_id)",
            "documented",
            thread_page(DOCUMENTED_THREAD),
            (org, thread),
            True,
        ),
        _twice(
            f"message search .ilike(body, '%{word}%')",
            "careless",
            pgrst(
                f'select {THREAD_COLUMNS}, "messages"."conversation_id" from "public"."messages"'
                ' where "messages"."body" ilike $1'
                f' order by "messages"."created_at" desc limit {PAGE} offset 0'
            ),
            (f"%{word}%",),
            False,
        ),
        Shape(
            f"message search .rpc('search_messages', '{word}')",
            "documented",
            pgrst(
                'select "pgrst_call".* from "public"."search_messages"('
                '"organization_id" := $1, "query" := $2) "pgrst_call"'
            ),
            pgrst(
                "select m.* from public.messages m where m.organization_id = $1"
                " and m.body ilike '%' || $2 || '%' order by m.created_at desc, m.id desc limit 50"
            ),
            (org, word),
            True,
        ),
        _twice(
            f"contact search .or(name/email/phone.ilike.*{surname}*)",
            "careless",
            pgrst(
                'select "contacts"."id", "contacts"."name", "contacts"."email",'
                ' "contacts"."phone" from "public"."contacts"'
                ' where ("contacts"."name" ilike $1 or "contacts"."email" ilike $1'
                f' or "contacts"."phone" ilike $1) limit {PAGE} offset 0'
            ),
            (f"%{surname}%",),
            False,
        ),
        Shape(
            f"contact search .rpc('search_contacts', '{surname}')",
            "documented",
            pgrst(
                'select "pgrst_call".* from "public"."search_contacts"('
                '"organization_id" := $1, "query" := $2) "pgrst_call"'
            ),
            pgrst(
                "select c.* from public.contacts c where c.organization_id = $1"
                " and (coalesce(c.name, '') || ' ' || coalesce(c.email, '') || ' '"
                " || coalesce(c.phone, '')) ilike '%' || $2 || '%'"
                " order by c.created_at desc, c.id limit 50"
            ),
            (org, surname),
            True,
        ),
    ]
    return shapes
