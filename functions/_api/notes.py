"""/v1/notes — notes on contacts, companies, deals and conversations."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from functions._api.common import (
    READ,
    READ_ONE,
    WRITE,
    IdempotencyKey,
    ListQuery,
    Page,
    ReadKey,
    WriteKey,
    idempotent,
    in_tx,
    list_of,
)
from functions._api.schemas import Note
from shared.crm import notes
from shared.crm.entities import NOTES
from shared.web import RuntimeDep

router = APIRouter(prefix="/notes", tags=["notes"])


@router.get("", response_model=Page[Note], responses=READ, summary="List notes")
async def list_notes(key: ReadKey, runtime: RuntimeDep, query: ListQuery) -> Any:
    return await list_of(runtime, key, NOTES, query)


@router.post("", status_code=201, response_model=Note, responses=WRITE, summary="Create a note")
async def create_note(
    body: notes.NoteCreate,
    key: WriteKey,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await idempotent(
        runtime,
        key,
        scope="notes.create",
        idempotency_key=idempotency_key,
        request=body.model_dump(mode="json"),
        model=Note,
        work=lambda conn: notes.create_note(
            conn=conn, organization_id=key.organization_id, data=body
        ),
    )


@router.get("/{note_id}", response_model=Note, responses=READ_ONE, summary="Get a note")
async def get_note(note_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: notes.get_note(
            conn=conn, organization_id=key.organization_id, note_id=note_id
        ),
    )


@router.patch("/{note_id}", response_model=Note, responses=WRITE, summary="Update a note")
async def update_note(
    note_id: UUID, body: notes.NoteUpdate, key: WriteKey, runtime: RuntimeDep
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: notes.update_note(
            conn=conn, organization_id=key.organization_id, note_id=note_id, data=body
        ),
    )


@router.delete("/{note_id}", status_code=204, responses=WRITE, summary="Delete a note")
async def delete_note(note_id: UUID, key: WriteKey, runtime: RuntimeDep) -> Response:
    await in_tx(
        runtime,
        key,
        lambda conn: notes.delete_note(
            conn=conn, organization_id=key.organization_id, note_id=note_id
        ),
    )
    return Response(status_code=204)
