"""/v1/contacts — people in the CRM."""

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
from functions._api.schemas import Contact
from functions._api.tagging import add_tag_routes
from shared.crm import contacts
from shared.crm.entities import CONTACTS
from shared.web import RuntimeDep

router = APIRouter(prefix="/contacts", tags=["contacts"])


@router.get("", response_model=Page[Contact], responses=READ, summary="List contacts")
async def list_contacts(key: ReadKey, runtime: RuntimeDep, query: ListQuery) -> Any:
    return await list_of(runtime, key, CONTACTS, query)


@router.post(
    "", status_code=201, response_model=Contact, responses=WRITE, summary="Create a contact"
)
async def create_contact(
    body: contacts.ContactCreate,
    key: WriteKey,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await idempotent(
        runtime,
        key,
        scope="contacts.create",
        idempotency_key=idempotency_key,
        request=body.model_dump(mode="json"),
        model=Contact,
        work=lambda conn: contacts.create_contact(
            conn=conn, organization_id=key.organization_id, data=body
        ),
    )


@router.get("/{contact_id}", response_model=Contact, responses=READ_ONE, summary="Get a contact")
async def get_contact(contact_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: contacts.get_contact(
            conn=conn, organization_id=key.organization_id, contact_id=contact_id
        ),
    )


@router.patch("/{contact_id}", response_model=Contact, responses=WRITE, summary="Update a contact")
async def update_contact(
    contact_id: UUID, body: contacts.ContactUpdate, key: WriteKey, runtime: RuntimeDep
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: contacts.update_contact(
            conn=conn, organization_id=key.organization_id, contact_id=contact_id, data=body
        ),
    )


@router.delete("/{contact_id}", status_code=204, responses=WRITE, summary="Delete a contact")
async def delete_contact(contact_id: UUID, key: WriteKey, runtime: RuntimeDep) -> Response:
    await in_tx(
        runtime,
        key,
        lambda conn: contacts.delete_contact(
            conn=conn, organization_id=key.organization_id, contact_id=contact_id
        ),
    )
    return Response(status_code=204)


add_tag_routes(router, CONTACTS, Contact)
