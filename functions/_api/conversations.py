"""/v1/conversations — read-only (messages are sent through send-message), taggable."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter

from functions._api.common import READ, READ_ONE, ListQuery, Page, ReadKey, in_tx, list_of
from functions._api.schemas import Conversation, Message
from functions._api.tagging import add_tag_routes
from shared.crm import records
from shared.crm.entities import CONVERSATIONS, MESSAGES
from shared.web import RuntimeDep

router = APIRouter(prefix="/conversations", tags=["conversations"])


@router.get("", response_model=Page[Conversation], responses=READ, summary="List conversations")
async def list_conversations(key: ReadKey, runtime: RuntimeDep, query: ListQuery) -> Any:
    return await list_of(runtime, key, CONVERSATIONS, query)


@router.get(
    "/{conversation_id}",
    response_model=Conversation,
    responses=READ_ONE,
    summary="Get a conversation",
)
async def get_conversation(conversation_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: records.get_record(
            conn=conn,
            entity=CONVERSATIONS,
            organization_id=key.organization_id,
            record_id=conversation_id,
        ),
    )


@router.get(
    "/{conversation_id}/messages",
    response_model=Page[Message],
    responses=READ_ONE,
    summary="List a conversation's messages",
)
async def list_messages(
    conversation_id: UUID, key: ReadKey, runtime: RuntimeDep, query: ListQuery
) -> Any:
    async with runtime.db.user_tx(key) as conn:
        await records.get_record(
            conn=conn,
            entity=CONVERSATIONS,
            organization_id=key.organization_id,
            record_id=conversation_id,
        )
    return await list_of(runtime, key, MESSAGES, query, within={"conversation_id": conversation_id})


add_tag_routes(router, CONVERSATIONS, Conversation)
