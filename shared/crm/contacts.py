"""Contacts in the CRM: people, linked to a company, tagged, with custom fields.

Contacts are also created by the inbox when someone writes in; here they are
created and edited by people and API keys. Every function runs inside the
caller's RLS transaction.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import Field

from shared.crm.entities import CONTACTS
from shared.crm.inputs import (
    Channel,
    CustomFields,
    Email,
    Phone,
    Strict,
    TagRefs,
    changes,
    fields_of,
)
from shared.crm.records import delete_record, get_record
from shared.crm.tags import insert_tagged, update_tagged
from shared.db import Connection


class ContactFields(Strict):
    name: str | None = Field(default=None, max_length=200)
    email: Email | None = None
    phone: Phone | None = None
    avatar_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    company_id: UUID | None = None
    source: str | None = Field(default=None, min_length=1, max_length=100)
    assignee_id: UUID | None = None
    opted_out_channels: list[Channel] | None = None
    custom_fields: CustomFields | None = None
    tags: TagRefs | None = Field(default=None, description="Tag names (created if new) or ids")


class ContactCreate(ContactFields):
    source: str | None = Field(default="api", min_length=1, max_length=100)


class ContactUpdate(ContactFields):
    """Only the fields sent change; custom_fields merge (null removes one), tags are replaced."""


async def create_contact(
    *, conn: Connection, organization_id: UUID, data: ContactCreate
) -> dict[str, Any]:
    return await insert_tagged(
        conn=conn,
        organization_id=organization_id,
        entity=CONTACTS,
        columns=fields_of(data),
        tags=data.tags,
    )


async def update_contact(
    *, conn: Connection, organization_id: UUID, contact_id: UUID, data: ContactUpdate
) -> dict[str, Any]:
    sent = changes(data)
    return await update_tagged(
        conn=conn,
        organization_id=organization_id,
        entity=CONTACTS,
        record_id=contact_id,
        columns=sent,
        tags=(data.tags or []) if "tags" in sent else None,  # not sent: they stay
    )


async def get_contact(
    *, conn: Connection, organization_id: UUID, contact_id: UUID
) -> dict[str, Any]:
    return await get_record(
        conn=conn, entity=CONTACTS, organization_id=organization_id, record_id=contact_id
    )


async def delete_contact(*, conn: Connection, organization_id: UUID, contact_id: UUID) -> None:
    await delete_record(
        conn=conn, entity=CONTACTS, organization_id=organization_id, record_id=contact_id
    )
