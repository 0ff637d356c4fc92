"""Who gets in: cg_ keys of the organization only; read keys read; the document is served."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.validation.response.exceptions import InvalidData

from shared.db import Connection
from shared.settings import Settings
from tests.functions.api.conftest import Tenant, _spec_cache, conforms, error_of
from tests.support import auth


async def test_without_a_valid_key_nothing_is_served(
    api: httpx.AsyncClient, tenant: Tenant, settings: Settings, db: Connection
):
    assert (await api.get("/v1/contacts")).status_code == 401
    as_user = await api.get("/v1/contacts", headers=auth(settings, tenant.owner))
    assert as_user.status_code == 401
    assert error_of(as_user)["code"] == "invalid_api_key"
    unknown = await api.get("/v1/contacts", headers={"Authorization": "Bearer cg_" + "x" * 43})
    assert unknown.status_code == 401
    await db.execute(
        "update api_keys set revoked_at = now() where id = $1", tenant.principal.key_id
    )
    revoked = await api.get("/v1/contacts", headers=tenant.headers())
    assert revoked.status_code == 401


async def test_the_key_may_also_come_in_its_own_header(api: httpx.AsyncClient, tenant: Tenant):
    response = await api.get("/v1/tags", headers={"X-API-Key": tenant.key})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/contacts", {"name": "Ana"}),
        ("POST", "/v1/deals", {"title": "Big one"}),
        ("POST", "/v1/tags", {"name": "vip"}),
        ("POST", "/v1/tasks", {"title": "Call"}),
    ],
)
async def test_a_read_only_key_cannot_write(
    api: httpx.AsyncClient,
    tenant: Tenant,
    db: Connection,
    method: str,
    path: str,
    body: dict[str, Any],
):
    response = await api.request(method, path, json=body, headers=tenant.headers(read_only=True))
    assert response.status_code == 403
    assert error_of(response)["code"] == "insufficient_scope"
    assert await db.fetchval("select count(*) from contacts") == 0
    assert await db.fetchval("select count(*) from deals") == 0
    assert await db.fetchval("select count(*) from tasks") == 0


async def test_the_openapi_document_is_served_and_valid(api: httpx.AsyncClient):
    response = await api.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    OpenAPI.from_dict(document)  # a valid OpenAPI 3.1 document
    assert document["servers"] == [{"url": "/functions/v1/api"}]
    paths = set(document["paths"])
    for path in (
        "/v1/contacts",
        "/v1/contacts/{contact_id}",
        "/v1/contacts/{record_id}/tags",
        "/v1/companies",
        "/v1/deals/{deal_id}/move",
        "/v1/pipelines/{pipeline_id}/board",
        "/v1/tasks",
        "/v1/notes",
        "/v1/tags",
        "/v1/conversations/{conversation_id}/messages",
        "/v1/custom-fields",
    ):
        assert path in paths, path
    contacts = document["paths"]["/v1/contacts"]
    assert {"401", "422"} <= set(contacts["get"]["responses"])
    assert "Idempotency-Key" in {p["name"] for p in contacts["post"]["parameters"]}


def _schema(operation: dict[str, Any], *where: str) -> str:
    content = operation
    for step in where:
        content = content[step]
    ref: str = content["content"]["application/json"]["schema"]["$ref"]
    return ref.removeprefix("#/components/schemas/")


@pytest.mark.parametrize(
    ("collection", "one", "model"),
    [
        ("contacts", "contact", "Contact"),
        ("companies", "company", "Company"),
        ("deals", "deal", "Deal"),
        ("tasks", "task", "Task"),
        ("notes", "note", "Note"),
        ("tags", "tag", "Tag"),
    ],
)
async def test_each_resource_documents_its_standard_operations_in_its_own_names(
    api: httpx.AsyncClient, collection: str, one: str, model: str
):
    """The endpoints every resource shares are built by one factory; the document still
    names each resource's operations, path parameter and models."""
    paths = (await api.get("/openapi.json")).json()["paths"]
    listing, record = paths[f"/v1/{collection}"], paths[f"/v1/{collection}/{{{one}_id}}"]
    summaries = {
        (method, operation["summary"], operation["operationId"])
        for method, operation in (*listing.items(), *record.items())
    }
    base, by_id = f"v1_{collection}", f"v1_{collection}__{one}_id_"
    assert summaries == {
        ("get", f"List {collection}", f"list_{collection}_{base}_get"),
        ("post", f"Create a {one}", f"create_{one}_{base}_post"),
        ("get", f"Get a {one}", f"get_{one}_{by_id}_get"),
        ("patch", f"Update a {one}", f"update_{one}_{by_id}_patch"),
        ("delete", f"Delete a {one}", f"delete_{one}_{by_id}_delete"),
    }
    for operation in (*listing.values(), *record.values()):
        assert operation["tags"] == [collection]
    for operation in record.values():
        assert [p["name"] for p in operation["parameters"]] == [f"{one}_id"]
    assert _schema(listing["get"], "responses", "200") == f"Page_{model}_"
    assert _schema(listing["post"], "requestBody") == f"{model}Create"
    assert _schema(listing["post"], "responses", "201") == model
    assert _schema(record["get"], "responses", "200") == model
    assert _schema(record["patch"], "requestBody") == f"{model}Update"
    assert _schema(record["patch"], "responses", "200") == model
    assert set(record["delete"]["responses"]) == {
        "204",
        "401",
        "402",
        "403",
        "404",
        "409",
        "413",
        "422",
    }


async def test_the_conformance_check_catches_an_answer_the_document_does_not_allow(
    api: httpx.AsyncClient, tenant: Tenant
):
    """The check every API test relies on can fail: a body of the wrong shape is caught."""
    response = await api.get("/v1/tags", headers=tenant.headers())

    forged = httpx.Response(
        200,
        content=json.dumps({"data": [{"id": "not-a-tag"}], "next_cursor": None}).encode(),
        headers={"content-type": "application/json"},
        request=response.request,
    )
    with pytest.raises(InvalidData):
        conforms(_spec_cache["api"], response.request, forged)
    undocumented = httpx.Response(
        418, content=b"{}", headers={"content-type": "application/json"}, request=response.request
    )
    with pytest.raises(ResponseNotFound):
        conforms(_spec_cache["api"], response.request, undocumented)


async def test_the_openapi_document_says_what_each_scope_allows(api: httpx.AsyncClient):
    schemes = (await api.get("/openapi.json")).json()["components"]["securitySchemes"]
    for scheme in schemes.values():
        text = scheme["description"]
        assert "`read`" in text and "`write`" in text
        assert "No scope changes pipelines, stages or custom field definitions" in text
