"""/v1/notes — notes on contacts, companies, deals and conversations."""

from __future__ import annotations

from functions._api.crud import Resource, crud_router
from functions._api.schemas import Note
from shared.crm import notes
from shared.crm.entities import NOTES

router = crud_router(
    Resource(
        collection="notes",
        entity=NOTES,
        model=Note,
        create_input=notes.NoteCreate,
        update_input=notes.NoteUpdate,
        create=notes.create_note,
        get=notes.get_note,
        update=notes.update_note,
        delete=notes.delete_note,
    )
)
