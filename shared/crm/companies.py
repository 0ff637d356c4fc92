"""Companies: the organizations contacts work for, with an address and custom fields."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import Field

from shared.crm.entities import COMPANIES
from shared.crm.inputs import CustomFields, Domain, Phone, Strict, changes, fields_of
from shared.crm.records import delete_record, get_record, insert_record, update_record
from shared.db import Connection

AddressLine = Field(default=None, max_length=200)


class Address(Strict):
    line1: str | None = AddressLine
    line2: str | None = AddressLine
    city: str | None = AddressLine
    region: str | None = AddressLine
    postal_code: str | None = AddressLine
    country: str | None = AddressLine


class CompanyFields(Strict):
    domain: Domain | None = None
    phone: Phone | None = None
    address: Address | None = None
    assignee_id: UUID | None = None
    custom_fields: CustomFields | None = None


class CompanyCreate(CompanyFields):
    name: str = Field(min_length=1, max_length=200)


class CompanyUpdate(CompanyFields):
    """Only the fields sent change; custom_fields merge (null removes one)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)


async def create_company(
    *, conn: Connection, organization_id: UUID, data: CompanyCreate
) -> dict[str, Any]:
    company_id = await insert_record(
        conn=conn, entity=COMPANIES, organization_id=organization_id, values=fields_of(data)
    )
    return await get_company(conn=conn, organization_id=organization_id, company_id=company_id)


async def update_company(
    *, conn: Connection, organization_id: UUID, company_id: UUID, data: CompanyUpdate
) -> dict[str, Any]:
    await update_record(
        conn=conn,
        entity=COMPANIES,
        organization_id=organization_id,
        record_id=company_id,
        values=changes(data),
    )
    return await get_company(conn=conn, organization_id=organization_id, company_id=company_id)


async def get_company(
    *, conn: Connection, organization_id: UUID, company_id: UUID
) -> dict[str, Any]:
    return await get_record(
        conn=conn, entity=COMPANIES, organization_id=organization_id, record_id=company_id
    )


async def delete_company(*, conn: Connection, organization_id: UUID, company_id: UUID) -> None:
    await delete_record(
        conn=conn, entity=COMPANIES, organization_id=organization_id, record_id=company_id
    )
