"""/v1/business-hours, /v1/sla-policies and /v1/conversations/{id}/sla.

Business hours and SLA policies are the organization's SLA configuration: any key
reads them, write keys (which act as managers) change them. A conversation's SLA
is read-only: the events worker runs its clocks.

No `from __future__ import annotations` here: the CRUD endpoints' annotations are
set per resource (the body, the path id) and FastAPI must see them as objects.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, create_model

from functions._api.billing import requires
from functions._api.common import (
    READ,
    READ_ONE,
    WRITE,
    IdempotencyKey,
    ReadKey,
    WriteKey,
    idempotent,
    in_tx,
)
from shared.sla import clocks, config
from shared.sla.inputs import (
    BusinessHoursCreate,
    BusinessHoursUpdate,
    Holiday,
    Interval,
    PolicyCreate,
    PolicyUpdate,
    Weekday,
)
from shared.web import RuntimeDep

router = APIRouter(dependencies=[requires("sla")])
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


class BusinessHours(BaseModel):
    id: UUID
    organization_id: UUID
    channel_account_id: UUID | None
    name: str
    timezone: str
    weekly: dict[Weekday, list[Interval]]
    holidays: list[Holiday]
    created_at: datetime
    updated_at: datetime


class SlaPolicy(BaseModel):
    id: UUID
    organization_id: UUID
    name: str
    first_response_seconds: int | None
    next_response_seconds: int | None
    resolution_seconds: int | None
    business_hours_only: bool
    is_default: bool
    channel_account_id: UUID | None
    created_at: datetime
    updated_at: datetime


class SlaClock(BaseModel):
    id: int
    kind: Literal["first_response", "next_response", "resolution"]
    policy_id: UUID | None
    business_hours_only: bool
    started_at: datetime
    due_at: datetime | None
    stopped_at: datetime | None
    outcome: Literal["met", "breached", "cancelled"] | None
    met: bool
    breached: bool
    breached_at: datetime | None
    wall_seconds: int | None
    business_seconds: int | None


class SlaState(BaseModel):
    conversation_id: UUID
    policy_id: UUID | None
    running: dict[Literal["first_response", "next_response", "resolution"], SlaClock | None]
    clocks: list[SlaClock]


@dataclass(frozen=True)
class Config:
    """One piece of SLA configuration served as list, create, get, update and delete."""

    path: str  # "/sla-policies": also the OpenAPI tag and the idempotency scope
    one: str  # "an SLA policy", in summaries
    many: str  # "SLA policies"
    id_name: str  # the path parameter, also the domain functions' keyword
    model: type[BaseModel]
    create_input: type[BaseModel]
    update_input: type[BaseModel]
    create_doc: str
    domain: dict[str, Callable[..., Awaitable[Any]]]  # list, create, get, update, delete


def _bind(endpoint: Endpoint, **annotations: Any) -> Endpoint:
    """Types known per resource only (the body, the named path id), for FastAPI to read."""
    endpoint.__annotations__.update(annotations)
    return endpoint


def config_routes(router: APIRouter, c: Config) -> None:
    tags: list[str | Enum] = [c.path.strip("/")]
    by_id = f"{c.path}/{{{c.id_name}}}"
    RecordId = Annotated[UUID, Path(alias=c.id_name)]
    listed = create_model(f"{c.model.__name__}List", data=(list[c.model], ...))  # type: ignore[name-defined]

    async def list_all(key: ReadKey, runtime: RuntimeDep) -> Any:
        org = key.organization_id
        rows = await in_tx(
            runtime, key, lambda conn: c.domain["list"](conn=conn, organization_id=org)
        )
        return {"data": rows}

    async def create(
        body: BaseModel, key: WriteKey, runtime: RuntimeDep, idempotency_key: IdempotencyKey = None
    ) -> JSONResponse:
        return await idempotent(
            runtime,
            key,
            scope=f"{tags[0]}.create",
            idempotency_key=idempotency_key,
            request=body.model_dump(mode="json"),
            model=c.model,
            work=lambda conn: c.domain["create"](
                conn=conn, organization_id=key.organization_id, data=body
            ),
        )

    async def get(record_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
        return await in_tx(
            runtime,
            key,
            lambda conn: c.domain["get"](
                conn=conn, organization_id=key.organization_id, **{c.id_name: record_id}
            ),
        )

    async def update(record_id: UUID, body: BaseModel, key: WriteKey, runtime: RuntimeDep) -> Any:
        return await in_tx(
            runtime,
            key,
            lambda conn: c.domain["update"](
                conn=conn, organization_id=key.organization_id, data=body, **{c.id_name: record_id}
            ),
        )

    async def delete(record_id: UUID, key: WriteKey, runtime: RuntimeDep) -> Response:
        await in_tx(
            runtime,
            key,
            lambda conn: c.domain["delete"](
                conn=conn, organization_id=key.organization_id, **{c.id_name: record_id}
            ),
        )
        return Response(status_code=204)

    name = c.path.strip("/").replace("-", "_")
    router.add_api_route(
        c.path,
        list_all,
        methods=["GET"],
        response_model=listed,
        responses=READ,
        tags=tags,
        summary=f"List {c.many}",
        name=f"list_{name}",
    )
    router.add_api_route(
        c.path,
        _bind(create, body=c.create_input),
        methods=["POST"],
        status_code=201,
        response_model=c.model,
        responses=WRITE,
        tags=tags,
        summary=f"Create {c.one}",
        description=c.create_doc,
        name=f"create_{name}",
    )
    router.add_api_route(
        by_id,
        _bind(get, record_id=RecordId),
        methods=["GET"],
        response_model=c.model,
        responses=READ_ONE,
        tags=tags,
        summary=f"Get {c.one}",
        name=f"get_{name}",
    )
    router.add_api_route(
        by_id,
        _bind(update, record_id=RecordId, body=c.update_input),
        methods=["PATCH"],
        response_model=c.model,
        responses=WRITE,
        tags=tags,
        summary=f"Update {c.one}",
        description="The fields given replace the stored ones whole.",
        name=f"update_{name}",
    )
    router.add_api_route(
        by_id,
        _bind(delete, record_id=RecordId),
        methods=["DELETE"],
        status_code=204,
        responses=WRITE,
        tags=tags,
        summary=f"Delete {c.one}",
        name=f"delete_{name}",
    )


config_routes(
    router,
    Config(
        path="/business-hours",
        one="business hours",
        many="business hours (the organization's and each channel account's)",
        id_name="business_hours_id",
        model=BusinessHours,
        create_input=BusinessHoursCreate,
        update_input=BusinessHoursUpdate,
        create_doc="A timezone (IANA), open intervals per weekday that do not overlap, and"
        " holidays. One set for the organization, and at most one per channel account, which"
        " wins over the organization's for its conversations.",
        domain={
            "list": config.list_business_hours,
            "create": config.create_business_hours,
            "get": config.get_business_hours,
            "update": config.update_business_hours,
            "delete": config.delete_business_hours,
        },
    ),
)
config_routes(
    router,
    Config(
        path="/sla-policies",
        one="an SLA policy",
        many="SLA policies",
        id_name="policy_id",
        model=SlaPolicy,
        create_input=PolicyCreate,
        update_input=PolicyUpdate,
        create_doc="First-response, next-response and resolution targets in seconds, counted"
        " in business hours only if asked. A default policy applies to conversations whose"
        " first clock starts after it exists: the organization's, or one channel account's,"
        " which wins. New targets apply to clocks started from then on.",
        domain={
            "list": config.list_policies,
            "create": config.create_policy,
            "get": config.get_policy,
            "update": config.update_policy,
            "delete": config.delete_policy,
        },
    ),
)


# ---- a conversation's SLA -------------------------------------------------------------------


@router.get(
    "/conversations/{conversation_id}/sla",
    response_model=SlaState,
    responses=READ_ONE,
    tags=["conversations"],
    summary="A conversation's SLA",
    description="Its policy, the clock of each kind now running (with its due time) and"
    " every clock, newest first: met or breached, with the time taken in wall-clock and"
    " business-hours seconds.",
)
async def get_conversation_sla(conversation_id: UUID, key: ReadKey, runtime: RuntimeDep) -> Any:
    return await in_tx(
        runtime,
        key,
        lambda conn: clocks.sla_state(
            conn=conn, organization_id=key.organization_id, conversation_id=conversation_id
        ),
    )
