"""/v1/companies — the organizations contacts work for."""

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
from functions._api.schemas import Company
from shared.crm import companies
from shared.crm.entities import COMPANIES
from shared.web import RuntimeDep

router = APIRouter(prefix="/companies", tags=["companies"])


@router.get("", response_model=Page[Company], responses=READ, summary="List companies")
async def list_companies(key: ReadKey, runtime: RuntimeDep, query: ListQuery) -> Any:
    return await list_of(runtime, key, COMPANIES, query)


@router.post(
    "", status_code=201, response_model=Company, responses=WRITE, summary="Create a company"
)
async def create_company(
    body: companies.CompanyCreate,
    key: WriteKey,
    runtime: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    return await idempotent(
        runtime,
        key,
        scope="companies.create",
        idempotency_key=idempotency_key,
        request=body.model_dump(mode="json"),
        model=Company,
        work=lambda conn: companies.create_company(
            conn=conn, organization_id=key.organization_id, data=body
        ),
    )


@router.get("/{company_id}", response_model=Company, responses=READ_ONE, summary="Get a company")
async def get_company(company_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: companies.get_company(
            conn=conn, organization_id=key.organization_id, company_id=company_id
        ),
    )


@router.patch("/{company_id}", response_model=Company, responses=WRITE, summary="Update a company")
async def update_company(
    company_id: UUID, body: companies.CompanyUpdate, key: WriteKey, runtime: RuntimeDep
) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: companies.update_company(
            conn=conn, organization_id=key.organization_id, company_id=company_id, data=body
        ),
    )


@router.delete("/{company_id}", status_code=204, responses=WRITE, summary="Delete a company")
async def delete_company(company_id: UUID, key: WriteKey, runtime: RuntimeDep) -> Response:
    await in_tx(
        runtime,
        key,
        lambda conn: companies.delete_company(
            conn=conn, organization_id=key.organization_id, company_id=company_id
        ),
    )
    return Response(status_code=204)
