"""/v1/contacts: create, read, update, delete, tags, validation, isolation."""

from __future__ import annotations

import httpx

from tests.functions.api.conftest import Tenant, error_of


async def test_smoke(api: httpx.AsyncClient, tenant: Tenant):
    created = await api.post(
        "/v1/contacts",
        json={
            "name": "Ana",
            "email": "Ana@Example.com",
            "phone": "+351 912 345 678",
            "tags": ["VIP"],
        },
        headers=tenant.headers(),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["email"] == "ana@example.com" and body["phone"] == "+351912345678"
    listed = await api.get("/v1/contacts", headers=tenant.headers())
    assert listed.status_code == 200, listed.text
    assert [c["id"] for c in listed.json()["data"]] == [body["id"]]
    missing = await api.get(f"/v1/contacts/{tenant.org}", headers=tenant.headers())
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
