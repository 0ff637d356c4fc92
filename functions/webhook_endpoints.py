"""/functions/v1/webhook-endpoints — an organization's outbound webhooks (admins only).

POST   /                           {organization_id, url, events, description?}
                                   201; the signing secret (whsec_…) is in this answer only
GET    /?organization_id=…         the endpoints, never their secrets
GET    /{id}                       one endpoint
PATCH  /{id}                       {url?, events?, description?, enabled?}
POST   /{id}/disable               {reason?}: stop deliveries (PATCH enabled: true resumes)
POST   /{id}/rotate-secret         {overlap_hours?}: a new secret, shown once; the old one
                                   keeps signing for the overlap (default
                                   CONNECTGAIN_WEBHOOK_SECRET_OVERLAP_HOURS)
DELETE /{id}                       204
GET    /{id}/attempts              the delivery attempts, newest first (with delivery ids:
                                   events-worker/deliveries/{id}/replay sends one again)

Deliveries follow Standard Webhooks (webhook-id, webhook-timestamp,
webhook-signature headers; body {"type", "timestamp", "data"}): see
shared/events/sender.py. The OpenAPI document names each event's payload under
`webhooks`. A URL must be https and resolve to public addresses only
(CONNECTGAIN_WEBHOOK_EGRESS=local also allows http and loopback). An organization
has at most 20 endpoints (a 409 past that; private.webhook_endpoint_caps holds
another cap per organization).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response
from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema, create_model

from shared import members
from shared.events import egress, subscriptions
from shared.events.catalog import EVENT_TYPES
from shared.events.sender import WEBHOOK_WAITS
from shared.web import CurrentUser, RuntimeDep, function_app

router = APIRouter()

EVENTS_DOC = "The event types to receive: " + "; ".join(
    f"`{name}`: {doc}" for name, doc in EVENT_TYPES.items()
)


def _known(name: str) -> str:
    if name not in EVENT_TYPES:
        raise ValueError(f"unknown event type {name!r}; known: {', '.join(EVENT_TYPES)}")
    return name


EventType = Annotated[
    str,
    AfterValidator(_known),
    WithJsonSchema({"type": "string", "enum": list(EVENT_TYPES)}),
]
Events = Annotated[
    list[EventType],
    Field(min_length=1, max_length=64, description=EVENTS_DOC),
    AfterValidator(lambda names: list(dict.fromkeys(names))),
]
Url = Annotated[str, Field(min_length=1, max_length=2048, description="https, public host")]


class NewEndpoint(BaseModel):
    organization_id: UUID
    url: Url
    events: Events
    description: str | None = Field(default=None, max_length=500)


class Disabling(BaseModel):
    reason: str | None = Field(default=None, min_length=1, max_length=200)


class Rotation(BaseModel):
    overlap_hours: float | None = Field(
        default=None, ge=0, le=720, description="How long the old secret still signs"
    )


class EndpointChange(BaseModel):
    url: Url | None = None
    events: Events | None = None
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


@router.post("/", status_code=201)
async def create(body: NewEndpoint, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    url = await egress.check_url(body.url, egress=runtime.settings.webhook_egress or "public")
    async with runtime.db.user_tx(user) as conn:
        await members.require_role(
            conn=conn, organization_id=body.organization_id, at_least="admin"
        )
        return await subscriptions.create(
            conn=conn,
            organization_id=body.organization_id,
            url=url,
            events=body.events,
            description=body.description,
        )


@router.get("/")
async def list_endpoints(
    organization_id: UUID, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        await members.require_role(conn=conn, organization_id=organization_id, at_least="admin")
        found = await subscriptions.list_endpoints(conn=conn, organization_id=organization_id)
    return {"data": found}


@router.get("/{endpoint_id}")
async def get(endpoint_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await subscriptions.get(conn=conn, endpoint_id=endpoint_id)


@router.patch("/{endpoint_id}")
async def update(
    endpoint_id: UUID, body: EndpointChange, user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    if changes.get("url") is not None:
        egress_mode = runtime.settings.webhook_egress or "public"
        changes["url"] = await egress.check_url(changes["url"], egress=egress_mode)
    async with runtime.db.user_tx(user) as conn:
        return await subscriptions.update(conn=conn, endpoint_id=endpoint_id, changes=changes)


@router.post("/{endpoint_id}/disable")
async def disable(
    endpoint_id: UUID, user: CurrentUser, runtime: RuntimeDep, body: Disabling | None = None
) -> dict[str, Any]:
    changes: dict[str, Any] = {"enabled": False}
    if body is not None and body.reason:
        changes["disabled_reason"] = body.reason
    async with runtime.db.user_tx(user) as conn:
        return await subscriptions.update(conn=conn, endpoint_id=endpoint_id, changes=changes)


@router.post("/{endpoint_id}/rotate-secret")
async def rotate_secret(
    endpoint_id: UUID, user: CurrentUser, runtime: RuntimeDep, body: Rotation | None = None
) -> dict[str, Any]:
    hours = body.overlap_hours if body is not None else None
    if hours is None:
        hours = runtime.settings.webhook_secret_overlap_hours
    overlap = timedelta(hours=hours)
    async with runtime.db.user_tx(user) as conn:
        return await subscriptions.rotate(conn=conn, endpoint_id=endpoint_id, overlap=overlap)


@router.delete("/{endpoint_id}", status_code=204)
async def delete(endpoint_id: UUID, user: CurrentUser, runtime: RuntimeDep) -> Response:
    async with runtime.db.user_tx(user) as conn:
        await subscriptions.delete(conn=conn, endpoint_id=endpoint_id)
    return Response(status_code=204)


@router.get("/{endpoint_id}/attempts")
async def attempts(
    endpoint_id: UUID,
    user: CurrentUser,
    runtime: RuntimeDep,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        found = await subscriptions.attempts(
            conn=conn, endpoint_id=endpoint_id, before=before, limit=limit
        )
    return {"data": found}


app = function_app(router, name="webhook-endpoints")

# ---- what a receiver gets: one webhook per event type in the OpenAPI document -----------------

DELIVERED = {
    **EVENT_TYPES,
    "automation.webhook": "Sent by an automation rule's send_webhook action to its endpoint only"
    " ({rule: {id, name}, trigger: {type, event_id}, records: {<entity>: <id>}}).",
}


def _wait(wait: timedelta) -> str:
    seconds = int(wait.total_seconds())
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


SCHEDULE = "at once, then after " + ", ".join(_wait(w) for w in WEBHOOK_WAITS)


def _receiver(event_type: str, doc: str) -> Any:
    title = "".join(part.capitalize() for part in event_type.replace(".", "_").split("_"))
    model = create_model(
        f"{title}Event",
        type=(Literal[event_type], ...),  # type: ignore[arg-type]
        timestamp=(datetime, Field(description="When the event happened, UTC")),
        data=(dict[str, Any], Field(description=doc)),
    )

    async def receive(
        body: Any,
        webhook_id: Annotated[
            str, Header(description="msg_<event id>: the same on every attempt; dedupe on it")
        ],
        webhook_timestamp: Annotated[str, Header(description="Unix seconds, when signed")],
        webhook_signature: Annotated[
            str,
            Header(
                description="v1,<base64 HMAC-SHA256 of id.timestamp.body>, space-separated"
                " while a rotated-out secret still signs"
            ),
        ],
    ) -> None:
        """Documentation only: receivers implement it."""

    receive.__annotations__["body"] = model
    return receive


# The gateway adds these to the document of the app it serves (under `webhooks`).
WEBHOOKS = APIRouter()
for _type, _doc in DELIVERED.items():
    WEBHOOKS.add_api_route(
        _type,
        _receiver(_type, _doc),
        methods=["POST"],
        summary=_type,
        description=f"{_doc} Signed per Standard Webhooks; answer 2xx at once (within"
        f" CONNECTGAIN_WEBHOOK_TIMEOUT_SECONDS, 10 s), else it is tried again: {SCHEDULE}.",
        status_code=204,
    )
app.webhooks.include_router(WEBHOOKS)
