"""/v1/quick-replies — the organization's quick replies (`/refund` → its text).

Any key lists and searches them (`q`: a shortcut prefix when it starts with /, else
text in the body); write keys (which act as managers) change them. A member's
personal quick replies are theirs alone: they manage them as themselves through
PostgREST (RLS), never through an organization's key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from functions._api.common import READ, WRITE, ReadKey, WriteKey, in_tx
from shared.templates import library
from shared.web import RuntimeDep

router = APIRouter(prefix="/quick-replies", tags=["quick replies"])


class QuickReply(BaseModel):
    id: UUID
    organization_id: UUID
    owner_user_id: UUID | None
    shortcut: str
    body: str
    created_at: datetime
    updated_at: datetime


class QuickReplyCreate(BaseModel):
    shortcut: str = Field(pattern=library.SHORTCUT, description="`/refund`: a slash, a-z 0-9 _ -")
    body: str = Field(min_length=1, max_length=4096)


@router.get("", response_model=list[QuickReply], responses=READ, summary="Search quick replies")
async def search_quick_replies(
    key: ReadKey,
    runtime: RuntimeDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: library.search_quick_replies(
            conn=conn, organization_id=key.organization_id, query=q, limit=limit
        ),
    )


@router.post(
    "",
    status_code=201,
    response_model=QuickReply,
    responses=WRITE,
    summary="Create an organization-wide quick reply",
)
async def create_quick_reply(body: QuickReplyCreate, key: WriteKey, runtime: RuntimeDep) -> Any:
    data = library.QuickReplyCreate(shortcut=body.shortcut, body=body.body, personal=False)
    return await in_tx(
        runtime,
        key,
        lambda conn: library.create_quick_reply(
            conn=conn, organization_id=key.organization_id, user_id=None, data=data
        ),
    )


@router.patch(
    "/{quick_reply_id}", response_model=QuickReply, responses=WRITE, summary="Change a quick reply"
)
async def update_quick_reply(
    quick_reply_id: UUID, body: library.QuickReplyUpdate, key: WriteKey, runtime: RuntimeDep
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: library.update_quick_reply(
            conn=conn, organization_id=key.organization_id, reply_id=quick_reply_id, data=body
        ),
    )


@router.delete(
    "/{quick_reply_id}", status_code=204, responses=WRITE, summary="Delete a quick reply"
)
async def delete_quick_reply(quick_reply_id: UUID, key: WriteKey, runtime: RuntimeDep) -> Response:
    await in_tx(
        runtime,
        key,
        lambda conn: library.delete_quick_reply(
            conn=conn, organization_id=key.organization_id, reply_id=quick_reply_id
        ),
    )
    return Response(status_code=204)
