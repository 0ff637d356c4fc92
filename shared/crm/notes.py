"""Notes on a contact, company, deal or conversation. Authors edit and delete their own
notes, managers any (the policies decide; a refusal here says which it was)."""

from __future__ import annotations

from typing import Any, Self
from uuid import UUID

from pydantic import Field, model_validator

from shared.crm.entities import NOTES
from shared.crm.inputs import Strict
from shared.crm.records import delete_record, get_record, insert_record, update_record
from shared.db import Connection

SUBJECTS = ("contact_id", "company_id", "deal_id", "conversation_id")
Body = Field(min_length=1, max_length=50000)


class NoteCreate(Strict):
    body: str = Body
    contact_id: UUID | None = None
    company_id: UUID | None = None
    deal_id: UUID | None = None
    conversation_id: UUID | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> Self:
        if sum(getattr(self, s) is not None for s in SUBJECTS) != 1:
            raise ValueError(f"a note is about exactly one of {', '.join(SUBJECTS)}")
        return self


class NoteUpdate(Strict):
    body: str = Body


async def create_note(
    *, conn: Connection, organization_id: UUID, data: NoteCreate
) -> dict[str, Any]:
    note_id = await insert_record(
        conn=conn,
        entity=NOTES,
        organization_id=organization_id,
        values=data.model_dump(exclude_none=True),
    )
    return await get_note(conn=conn, organization_id=organization_id, note_id=note_id)


async def update_note(
    *, conn: Connection, organization_id: UUID, note_id: UUID, data: NoteUpdate
) -> dict[str, Any]:
    await update_record(
        conn=conn,
        entity=NOTES,
        organization_id=organization_id,
        record_id=note_id,
        values={"body": data.body},
    )
    return await get_note(conn=conn, organization_id=organization_id, note_id=note_id)


async def get_note(*, conn: Connection, organization_id: UUID, note_id: UUID) -> dict[str, Any]:
    return await get_record(
        conn=conn, entity=NOTES, organization_id=organization_id, record_id=note_id
    )


async def delete_note(*, conn: Connection, organization_id: UUID, note_id: UUID) -> None:
    await delete_record(conn=conn, entity=NOTES, organization_id=organization_id, record_id=note_id)
