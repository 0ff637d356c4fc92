"""/functions/v1/templates — templates and quick replies for signed-in members.

POST /whatsapp/sync   {channel_account_id}             managers+: sync from Meta
POST /whatsapp        {channel_account_id, template}   managers+: submit for approval
POST /render          {conversation_id, text_template_id | quick_reply_id | body}
                      any member: the text filled for that conversation

Reads and writes of text templates and quick replies go through PostgREST under
RLS (managers write the organization's; any member their own quick replies);
`rpc/search_quick_replies` searches them. A WhatsApp template is sent through
send-message.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, Field, model_validator

from shared.errors import NotFound
from shared.templates import library
from shared.templates import whatsapp as wa
from shared.web import CurrentUser, RuntimeDep, function_app

router = APIRouter()


class RenderRequest(BaseModel):
    conversation_id: UUID
    text_template_id: UUID | None = None
    quick_reply_id: UUID | None = None
    body: str | None = Field(default=None, min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _one_source(self) -> RenderRequest:
        given = [self.text_template_id, self.quick_reply_id, self.body]
        if sum(x is not None for x in given) != 1:
            raise ValueError("give one of text_template_id, quick_reply_id or body")
        return self


@router.post("/whatsapp/sync")
async def sync(body: wa.SyncRequest, user: CurrentUser, runtime: RuntimeDep) -> dict[str, int]:
    return await wa.sync(runtime, principal=user, account_id=body.channel_account_id)


@router.post("/whatsapp", status_code=201)
async def submit(body: wa.Submission, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    return await wa.submit_new(
        runtime, principal=user, account_id=body.channel_account_id, template=body.template
    )


@router.post("/render")
async def render(body: RenderRequest, user: CurrentUser, runtime: RuntimeDep) -> dict[str, str]:
    async with runtime.db.user_tx(user) as conn:
        source = body.body
        if body.text_template_id is not None:
            source = await conn.fetchval(
                "select body from public.text_templates where id = $1", body.text_template_id
            )
        elif body.quick_reply_id is not None:
            source = await conn.fetchval(  # RLS: the organization's and the caller's own
                "select body from public.quick_replies where id = $1", body.quick_reply_id
            )
        if source is None:
            raise NotFound("No such template")
        text = await library.render_for_conversation(
            conn=conn, user_id=user.user_id, conversation_id=body.conversation_id, source=source
        )
    return {"text": text}


app = function_app(router, name="templates")
