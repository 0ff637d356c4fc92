"""Substring search over messages and contacts, newest first, a page at a time.

The database does the work (public.search_messages and public.search_contacts, in the
inbox reads migration): they check the caller belongs to the organization and read
through the trigram indexes, which an ILIKE under RLS could not use. Here the query
is checked and the page continued with the API's cursors.
"""

from __future__ import annotations

from uuid import UUID

from shared.crm.entities import Entity
from shared.crm.records import Page
from shared.db import Connection
from shared.errors import Unprocessable
from shared.pagination import Sort, SortKey, check_limit, decode_cursor, encode_cursor

MIN_QUERY = 3  # a shorter pattern has no trigram to look up
MAX_QUERY = 200
_VALUE = "sort_value__"
_FUNCTIONS = {"message": "public.search_messages", "contact": "public.search_contacts"}


def _newest_first(entity: Entity) -> Sort:
    """The functions' order: created_at desc (ties by id, in the order of their indexes)."""
    key = SortKey(f"{entity.alias}.created_at", "datetime", "timestamptz")
    return Sort(name="created_at", key=key, descending=True)


def check_query(query: str) -> str:
    words = query.strip()
    if len(words) < MIN_QUERY or len(query) > MAX_QUERY:
        message = f"must be {MIN_QUERY} to {MAX_QUERY} characters (spaces around not counted)"
        raise Unprocessable(f"q: {message}", details=[{"field": "q", "message": message}])
    return query


async def search(
    *,
    conn: Connection,
    entity: Entity,
    organization_id: UUID,
    query: str,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """The `entity` rows (messages or contacts) whose text contains `query`, ignoring case."""
    check_query(query)
    check_limit(limit)
    order = _newest_first(entity)
    after = decode_cursor(cursor, order) if cursor else None
    a = entity.alias
    rows = await conn.fetch(
        f"select {entity.columns}, {a}.created_at as {_VALUE}"
        f" from {_FUNCTIONS[entity.name]}($1, $2, $3, $4, $5) {a}",
        organization_id,
        query,
        after.value if after else None,
        after.id if after else None,
        limit + 1,
    )
    more = len(rows) > limit
    page = rows[:limit]
    next_cursor = encode_cursor(order, dict(page[-1]), _VALUE) if more else None
    return Page(
        data=[{k: v for k, v in r.items() if k != _VALUE} for r in page], next_cursor=next_cursor
    )
