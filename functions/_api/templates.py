"""/v1/whatsapp-templates and /v1/text-templates.

WhatsApp templates are Meta's: listed here as last synced, synced again (POST
/sync), and submitted for approval (POST); their status follows Meta's webhook.
Text templates are the organization's own, for the other channels, checked on save
and rendered in a sandbox (POST /{id}/render). Any key reads; write keys (which act
as managers) change them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from functions._api.common import READ, READ_ONE, WRITE, ReadKey, WriteKey, in_tx
from shared.guard import describe_errors
from shared.templates import library, render
from shared.templates import whatsapp as wa
from shared.web import RuntimeDep

router = APIRouter()
# the calls to Meta: 502 when it refuses (its message kept), 503 when it did not answer
PROVIDER = {
    **describe_errors(
        502,
        503,
        meaning={
            502: "WhatsApp refused the call; the message is Meta's",
            503: "WhatsApp did not answer; nothing changed, try again",
        },
    ),
    **WRITE,
}


class WhatsAppTemplate(BaseModel):
    id: UUID
    channel_account_id: UUID
    provider_template_id: str | None
    name: str
    language: str
    category: str
    status: str
    parameter_format: Literal["POSITIONAL", "NAMED"]
    components: list[dict[str, Any]]
    status_reason: str | None
    synced_at: datetime | None
    updated_at: datetime


class SyncResult(BaseModel):
    synced: int
    removed: int


class TextTemplate(BaseModel):
    id: UUID
    organization_id: UUID
    name: str
    body: str
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


class RenderRequest(BaseModel):
    contact: dict[str, Any] = Field(default_factory=dict)
    agent: dict[str, Any] = Field(default_factory=dict)
    conversation: dict[str, Any] = Field(default_factory=dict)
    organization: dict[str, Any] = Field(default_factory=dict)


class Rendered(BaseModel):
    text: str


@router.get(
    "/whatsapp-templates",
    response_model=list[WhatsAppTemplate],
    responses=READ,
    tags=["templates"],
    summary="List WhatsApp templates (as last synced)",
)
async def list_whatsapp_templates(
    key: ReadKey, runtime: RuntimeDep, channel_account_id: UUID | None = None
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: wa.list_templates(
            conn=conn, organization_id=key.organization_id, channel_account_id=channel_account_id
        ),
    )


@router.post(
    "/whatsapp-templates/sync",
    response_model=SyncResult,
    responses=PROVIDER,
    tags=["templates"],
    summary="Sync a WhatsApp account's templates from Meta",
)
async def sync_whatsapp_templates(body: wa.SyncRequest, key: WriteKey, runtime: RuntimeDep) -> Any:
    return await wa.sync(runtime, principal=key, account_id=body.channel_account_id)


@router.post(
    "/whatsapp-templates",
    status_code=201,
    response_model=WhatsAppTemplate,
    responses=PROVIDER,
    tags=["templates"],
    summary="Submit a WhatsApp template for approval",
)
async def submit_whatsapp_template(body: wa.Submission, key: WriteKey, runtime: RuntimeDep) -> Any:
    return await wa.submit_new(
        runtime, principal=key, account_id=body.channel_account_id, template=body.template
    )


@router.get(
    "/text-templates",
    response_model=list[TextTemplate],
    responses=READ,
    tags=["templates"],
    summary="List text templates",
)
async def list_text_templates(key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: library.list_text_templates(conn=conn, organization_id=key.organization_id),
    )


@router.post(
    "/text-templates",
    status_code=201,
    response_model=TextTemplate,
    responses=WRITE,
    tags=["templates"],
    summary="Create a text template",
)
async def create_text_template(
    body: library.TextTemplateCreate, key: WriteKey, runtime: RuntimeDep
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: library.create_text_template(
            conn=conn, organization_id=key.organization_id, user_id=None, data=body
        ),
    )


@router.get(
    "/text-templates/{template_id}",
    response_model=TextTemplate,
    responses=READ_ONE,
    tags=["templates"],
    summary="Get a text template",
)
async def get_text_template(template_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: library.get_text_template(
            conn=conn, organization_id=key.organization_id, template_id=template_id
        ),
    )


@router.patch(
    "/text-templates/{template_id}",
    response_model=TextTemplate,
    responses=WRITE,
    tags=["templates"],
    summary="Change a text template",
)
async def update_text_template(
    template_id: UUID, body: library.TextTemplateUpdate, key: WriteKey, runtime: RuntimeDep
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: library.update_text_template(
            conn=conn, organization_id=key.organization_id, template_id=template_id, data=body
        ),
    )


@router.delete(
    "/text-templates/{template_id}",
    status_code=204,
    responses=WRITE,
    tags=["templates"],
    summary="Delete a text template",
)
async def delete_text_template(template_id: UUID, key: WriteKey, runtime: RuntimeDep) -> Response:
    await in_tx(
        runtime,
        key,
        lambda conn: library.delete_text_template(
            conn=conn, organization_id=key.organization_id, template_id=template_id
        ),
    )
    return Response(status_code=204)


@router.post(
    "/text-templates/{template_id}/render",
    response_model=Rendered,
    responses=READ_ONE,
    tags=["templates"],
    summary="Render a text template with the given values",
)
async def render_text_template(
    template_id: UUID, body: RenderRequest, key: ReadKey, runtime: RuntimeDep
) -> Any:
    row = await in_tx(
        runtime,
        key,
        lambda conn: library.get_text_template(
            conn=conn, organization_id=key.organization_id, template_id=template_id
        ),
    )
    return {"text": render.render(row["body"], body.model_dump())}
