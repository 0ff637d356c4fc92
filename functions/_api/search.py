"""/v1/messages/search and /v1/contacts/search — substring search, newest first.

Included before the contacts' routes, so /contacts/search is never read as a contact id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from functions._api.common import READ, Page, ReadKey, in_tx
from functions._api.schemas import Contact, Message
from shared.crm import search
from shared.crm.entities import CONTACTS, MESSAGES, Entity
from shared.pagination import DEFAULT_LIMIT, MAX_LIMIT
from shared.web import RuntimeDep

router = APIRouter()


async def _found(
    runtime: RuntimeDep, key: ReadKey, entity: Entity, q: str, cursor: str | None, limit: int
) -> dict[str, Any]:
    page = await in_tx(
        runtime,
        key,
        lambda conn: search.search(
            conn=conn,
            entity=entity,
            organization_id=key.organization_id,
            query=q,
            limit=limit,
            cursor=cursor,
        ),
    )
    return {"data": page.data, "next_cursor": page.next_cursor}


Q = Annotated[
    str,
    Query(
        description=f"Text to find anywhere, ignoring case ({search.MIN_QUERY} to"
        f" {search.MAX_QUERY} characters; % and _ are literal)",
        examples=["refund"],
    ),
]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


@router.get(
    "/messages/search",
    response_model=Page[Message],
    responses=READ,
    summary="Search messages",
    description="Messages of every conversation whose body contains `q`, newest first.",
    tags=["conversations"],
)
async def search_messages(
    key: ReadKey, runtime: RuntimeDep, q: Q, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
) -> Any:
    return await _found(runtime, key, MESSAGES, q, cursor, limit)


@router.get(
    "/contacts/search",
    response_model=Page[Contact],
    responses=READ,
    summary="Search contacts",
    description="Contacts whose name, e-mail or phone contains `q`, newest first.",
    tags=["contacts"],
)
async def search_contacts(
    key: ReadKey, runtime: RuntimeDep, q: Q, cursor: Cursor = None, limit: Limit = DEFAULT_LIMIT
) -> Any:
    return await _found(runtime, key, CONTACTS, q, cursor, limit)
