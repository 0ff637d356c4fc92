"""/v1/contacts — people in the CRM."""

from __future__ import annotations

from functions._api.crud import Resource, crud_router
from functions._api.schemas import Contact
from functions._api.tagging import add_tag_routes
from shared.crm import contacts
from shared.crm.entities import CONTACTS

router = crud_router(
    Resource(
        collection="contacts",
        entity=CONTACTS,
        model=Contact,
        create_input=contacts.ContactCreate,
        update_input=contacts.ContactUpdate,
        create=contacts.create_contact,
        get=contacts.get_contact,
        update=contacts.update_contact,
        delete=contacts.delete_contact,
    )
)
add_tag_routes(router, CONTACTS, Contact)
