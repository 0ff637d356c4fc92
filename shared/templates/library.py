"""The organization's text templates and quick replies: writes checked before they
are stored (a template that does not parse is refused, naming the problem), quick
replies searched by shortcut prefix or text. Run under the caller's RLS: managers
and above write the organization's, any member their own quick replies."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field, model_validator

from shared.db import Connection, fetch_found
from shared.errors import NotFound, Unprocessable
from shared.templates import render

SHORTCUT = r"^/[a-z0-9][a-z0-9_-]{0,39}$"
TEXT_COLUMNS = "id, organization_id, name, body, created_by, created_at, updated_at"
REPLY_COLUMNS = "id, organization_id, owner_user_id, shortcut, body, created_at, updated_at"


class TextTemplateCreate(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    body: str = Field(min_length=1, max_length=4096)


class TextTemplateUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    body: str | None = Field(default=None, min_length=1, max_length=4096)


class QuickReplyCreate(BaseModel):
    shortcut: str = Field(pattern=SHORTCUT, description="`/refund`: a slash, then a-z 0-9 _ -")
    body: str = Field(min_length=1, max_length=4096)
    personal: bool = Field(default=False, description="The caller's own, not the organization's")


class QuickReplyUpdate(BaseModel):
    shortcut: str | None = Field(default=None, pattern=SHORTCUT)
    body: str | None = Field(default=None, min_length=1, max_length=4096)


class TextTemplateSend(BaseModel):
    """An organization's text template to send, by id or name, with values of its own
    (`{{ values.coupon }}`) besides the contact, agent, conversation and organization."""

    id: UUID | None = None
    name: str | None = Field(default=None, min_length=1, max_length=120)
    values: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=50)

    @model_validator(mode="after")
    def _one_reference(self) -> TextTemplateSend:
        if (self.id is None) == (self.name is None):
            raise ValueError("name the text template by id or by name, not both")
        return self


# ---- text templates -----------------------------------------------------------------------------


async def create_text_template(
    *, conn: Connection, organization_id: UUID, user_id: UUID | None, data: TextTemplateCreate
) -> dict[str, Any]:
    render.check(data.body)
    row = await conn.fetchrow(
        f"insert into public.text_templates (organization_id, name, body, created_by)"
        f" values ($1, $2, $3, $4) returning {TEXT_COLUMNS}",
        organization_id,
        data.name,
        data.body,
        user_id,
    )
    assert row is not None
    return dict(row)


async def update_text_template(
    *, conn: Connection, organization_id: UUID, template_id: UUID, data: TextTemplateUpdate
) -> dict[str, Any]:
    if data.body is not None:
        render.check(data.body)
    return await fetch_found(
        conn,
        "No such text template",
        f"update public.text_templates set name = coalesce($3, name), body = coalesce($4, body),"
        f" updated_at = now() where organization_id = $1 and id = $2 returning {TEXT_COLUMNS}",
        organization_id,
        template_id,
        data.name,
        data.body,
    )


async def get_text_template(
    *, conn: Connection, organization_id: UUID, template_id: UUID
) -> dict[str, Any]:
    return await fetch_found(
        conn,
        "No such text template",
        f"select {TEXT_COLUMNS} from public.text_templates where organization_id = $1 and id = $2",
        organization_id,
        template_id,
    )


async def list_text_templates(*, conn: Connection, organization_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"select {TEXT_COLUMNS} from public.text_templates where organization_id = $1"
        " order by name",
        organization_id,
    )
    return [dict(r) for r in rows]


async def delete_text_template(
    *, conn: Connection, organization_id: UUID, template_id: UUID
) -> None:
    await fetch_found(
        conn,
        "No such text template",
        "delete from public.text_templates where organization_id = $1 and id = $2 returning id",
        organization_id,
        template_id,
    )


# ---- quick replies ------------------------------------------------------------------------------


async def create_quick_reply(
    *, conn: Connection, organization_id: UUID, user_id: UUID | None, data: QuickReplyCreate
) -> dict[str, Any]:
    render.check(data.body)
    row = await conn.fetchrow(
        f"insert into public.quick_replies (organization_id, owner_user_id, shortcut, body)"
        f" values ($1, $2, $3, $4) returning {REPLY_COLUMNS}",
        organization_id,
        user_id if data.personal else None,
        data.shortcut,
        data.body,
    )
    assert row is not None
    return dict(row)


async def update_quick_reply(
    *, conn: Connection, organization_id: UUID, reply_id: UUID, data: QuickReplyUpdate
) -> dict[str, Any]:
    if data.body is not None:
        render.check(data.body)
    return await fetch_found(
        conn,
        "No such quick reply",
        f"update public.quick_replies set shortcut = coalesce($3, shortcut),"
        f" body = coalesce($4, body), updated_at = now()"
        f" where organization_id = $1 and id = $2 returning {REPLY_COLUMNS}",
        organization_id,
        reply_id,
        data.shortcut,
        data.body,
    )


async def delete_quick_reply(*, conn: Connection, organization_id: UUID, reply_id: UUID) -> None:
    await fetch_found(
        conn,
        "No such quick reply",
        "delete from public.quick_replies where organization_id = $1 and id = $2 returning id",
        organization_id,
        reply_id,
    )


async def search_quick_replies(
    *, conn: Connection, organization_id: UUID, query: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The caller's quick replies (the organization's and their own): a query starting
    with / matches shortcuts by prefix, other text the body. Personal ones first, then
    by shortcut (public.search_quick_replies, which reaches the indexes under RLS)."""
    rows = await conn.fetch(
        f"select {REPLY_COLUMNS} from public.search_quick_replies($1, $2, $3)",
        organization_id,
        query,
        limit,
    )
    return [dict(r) for r in rows]


# ---- rendering for a conversation ---------------------------------------------------------------


async def render_text_template(
    *, conn: Connection, user_id: UUID, conversation_id: UUID, send: TextTemplateSend
) -> str:
    """The text template `send` names (of the conversation's organization, under the
    caller's RLS) filled for the conversation; 422 when there is no such template or a
    variable has no value."""
    body = await conn.fetchval(
        "select t.body from public.text_templates t join public.conversations c"
        "   on c.organization_id = t.organization_id and c.id = $1"
        " where ($2::uuid is null or t.id = $2) and ($3::text is null or t.name = $3)",
        conversation_id,
        send.id,
        send.name,
    )
    if body is None:
        raise Unprocessable(
            f"text_template: no text template {send.name or send.id} in this organization",
            code="unknown_text_template",
        )
    return await render_for_conversation(
        conn=conn, user_id=user_id, conversation_id=conversation_id, source=body, values=send.values
    )


async def render_for_conversation(
    *,
    conn: Connection,
    user_id: UUID,
    conversation_id: UUID,
    source: str,
    values: dict[str, Any] | None = None,
) -> str:
    """`source` filled for an agent's reply: the conversation's contact (custom fields
    under contact.custom), the agent, the conversation, its organization and `values`."""
    row = await conn.fetchrow(
        """
        select c.id, c.subject, c.status::text as status,
               k.name, k.email, k.phone, k.custom_fields,
               o.name as organization_name,
               (select p.full_name from public.profiles p where p.id = $2) as agent_name,
               (select p.email from public.profiles p where p.id = $2) as agent_email
          from public.conversations c
          join public.contacts k on k.id = c.contact_id
          join public.organizations o on o.id = c.organization_id
         where c.id = $1
        """,
        conversation_id,
        user_id,
    )
    if row is None:
        raise NotFound("No such conversation")
    present = {
        "agent": {"name": row["agent_name"], "email": row["agent_email"]},
        "conversation": {"id": str(row["id"]), "subject": row["subject"], "status": row["status"]},
        "organization": {"name": row["organization_name"]},
    }
    context = {
        name: {k: v for k, v in values.items() if v is not None} for name, values in present.items()
    }
    context["contact"] = render.contact_context(dict(row))
    context["values"] = dict(values or {})
    return render.render(source, context)
