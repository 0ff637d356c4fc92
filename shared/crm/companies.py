"""Companies: the organizations contacts work for, with an address and custom fields."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import Field

from shared.crm.entities import COMPANIES
from shared.crm.inputs import CustomFields, Domain, Phone, Strict, changes
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


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    columns = dict(values)
    if "address" in columns:
        address = columns["address"]
        columns["address"] = address.model_dump(exclude_none=True) if address else {}
    if columns.get("custom_fields") is None:
        columns.pop("custom_fields", None)
    if "name" in columns and columns["name"] is None:
        columns.pop("name")
    return columns


async def create_company(
    *, conn: Connection, organization_id: UUID, data: CompanyCreate
) -> dict[str, Any]:
    values = {name: getattr(data, name) for name in type(data).model_fields}
    company_id = await insert_record(
        conn=conn, entity=COMPANIES, organization_id=organization_id, values=_columns(values)
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
        values=_columns(changes(data)),
        expressions={"custom_fields": "custom_fields || {}::jsonb"},
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
