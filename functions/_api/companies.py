"""/v1/companies — the organizations contacts work for."""

from __future__ import annotations

from functions._api.crud import Resource, crud_router
from functions._api.schemas import Company
from shared.crm import companies
from shared.crm.entities import COMPANIES

router = crud_router(
    Resource(
        collection="companies",
        entity=COMPANIES,
        model=Company,
        create_input=companies.CompanyCreate,
        update_input=companies.CompanyUpdate,
        create=companies.create_company,
        get=companies.get_company,
        update=companies.update_company,
        delete=companies.delete_company,
    )
)
