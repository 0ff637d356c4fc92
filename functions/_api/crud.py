"""The standard endpoints of a CRM resource, built from its declaration: list and idempotent
create on the collection; get, update and delete on one record.

No `from __future__ import annotations` here: the endpoints' annotations are built per
resource (the path parameter's name, the body's model) and FastAPI must see them as objects.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

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
from shared.crm.entities import Entity
from shared.web import RuntimeDep

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
# A domain function, e.g. notes.get_note(conn=, organization_id=, note_id=): keyword-only, the
# record's id under a keyword named after the resource, so they are typed no closer than this.
DomainCall = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Resource:
    collection: str  # "notes": the path, the OpenAPI tag and the idempotency scope
    entity: Entity  # its singular name ("note") names the operations and note_id
    model: type[BaseModel]  # the answer for one record
    create_input: type[BaseModel]
    update_input: type[BaseModel]
    create: DomainCall
    get: DomainCall
    update: DomainCall
    delete: DomainCall

    @property
    def id_name(self) -> str:
        """The path parameter, which is also the domain functions' keyword for the id."""
        return f"{self.entity.name}_id"


def _body_of(model: type[BaseModel]) -> Callable[[Endpoint], Endpoint]:
    """Make FastAPI read the request body as `model`, which an endpoint shared by every
    resource can only annotate as BaseModel."""

    def bind(endpoint: Endpoint) -> Endpoint:
        endpoint.__annotations__["body"] = model
        return endpoint

    return bind


def crud_router(resource: Resource) -> APIRouter:
    """A router for /{collection} with the standard endpoints; modules add their own to it."""
    router = APIRouter(prefix=f"/{resource.collection}", tags=[resource.collection])
    one, many, model = resource.entity.name, resource.collection, resource.model
    # the URL template and the OpenAPI document keep the resource's own name: {note_id}
    RecordId = Annotated[UUID, Path(alias=resource.id_name)]
    by_id = f"/{{{resource.id_name}}}"

    def id_keyword(record_id: UUID) -> dict[str, UUID]:
        """The id as the domain functions take it: note_id=…"""
        return {resource.id_name: record_id}

    # name= gives the operations the ids they had as one module each: list_notes_v1_notes_get
    @router.get(
        "",
        response_model=Page[model],  # type: ignore[valid-type]  # a model known at run time
        responses=READ,
        summary=f"List {many}",
        name=f"list_{many}",
    )
    async def list_records(key: ReadKey, runtime: RuntimeDep, query: ListQuery) -> Any:
        return await list_of(runtime, key, resource.entity, query)

    @router.post(
        "",
        status_code=201,
        response_model=model,
        responses=WRITE,
        summary=f"Create a {one}",
        name=f"create_{one}",
    )
    @_body_of(resource.create_input)
    async def create(
        body: BaseModel,
        key: WriteKey,
        runtime: RuntimeDep,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        return await idempotent(
            runtime,
            key,
            scope=f"{many}.create",
            idempotency_key=idempotency_key,
            request=body.model_dump(mode="json"),
            model=model,
            work=lambda conn: resource.create(
                conn=conn, organization_id=key.organization_id, data=body
            ),
        )

    @router.get(
        by_id, response_model=model, responses=READ_ONE, summary=f"Get a {one}", name=f"get_{one}"
    )
    async def get(record_id: RecordId, key: ReadKey, runtime: RuntimeDep) -> Any:
        return await in_tx(
            runtime,
            key,
            lambda conn: resource.get(
                conn=conn, organization_id=key.organization_id, **id_keyword(record_id)
            ),
        )

    @router.patch(
        by_id,
        response_model=model,
        responses=WRITE,
        summary=f"Update a {one}",
        name=f"update_{one}",
    )
    @_body_of(resource.update_input)
    async def update(
        record_id: RecordId, body: BaseModel, key: WriteKey, runtime: RuntimeDep
    ) -> Any:
        return await in_tx(
            runtime,
            key,
            lambda conn: resource.update(
                conn=conn, organization_id=key.organization_id, data=body, **id_keyword(record_id)
            ),
        )

    @router.delete(
        by_id, status_code=204, responses=WRITE, summary=f"Delete a {one}", name=f"delete_{one}"
    )
    async def delete(record_id: RecordId, key: WriteKey, runtime: RuntimeDep) -> Response:
        await in_tx(
            runtime,
            key,
            lambda conn: resource.delete(
                conn=conn, organization_id=key.organization_id, **id_keyword(record_id)
            ),
        )
        return Response(status_code=204)

    return router
