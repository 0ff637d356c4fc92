"""What every resource of the public API shares: cg_ key authentication and scopes,
list parameters, idempotent creation and the documented error answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Header, Query, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from shared import api_keys, idempotency, safejson
from shared.auth import ApiKeyPrincipal
from shared.crm import records
from shared.crm.entities import Entity
from shared.db import Connection
from shared.errors import Forbidden, Unauthorized, Unprocessable
from shared.guard import describe_errors
from shared.pagination import DEFAULT_LIMIT, MAX_LIMIT
from shared.web import RuntimeDep, respond

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="api_key_bearer",
    description=(
        f"An organization's cg_ API key: `Authorization: Bearer cg_…`. {api_keys.SCOPES_DOC}"
    ),
)
_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="api_key_header",
    description=f"The same cg_ API key in a header of its own. {api_keys.SCOPES_DOC}",
)


async def api_key(
    runtime: RuntimeDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> ApiKeyPrincipal:
    """The key's principal; its organization is the key's, never something in the request."""
    token = header or (bearer.credentials if bearer else None)
    if not token:
        raise Unauthorized("Send an API key: 'Authorization: Bearer cg_…'")
    if not api_keys.looks_like_key(token):
        raise Unauthorized("This API takes cg_ API keys", code="invalid_api_key")
    return await api_keys.authenticate(runtime.db, token)


async def write_key(key: Annotated[ApiKeyPrincipal, Depends(api_key)]) -> ApiKeyPrincipal:
    if "write" not in key.scopes:
        raise Forbidden(
            "This API key is read-only; writing needs a key with the write scope",
            code="insufficient_scope",
        )
    return key


ReadKey = Annotated[ApiKeyPrincipal, Depends(api_key)]
WriteKey = Annotated[ApiKeyPrincipal, Depends(write_key)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Retrying a POST with the same key returns the first answer, once",
    ),
]


# ---- lists ------------------------------------------------------------------------------------


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class ListParams:
    filter: Any
    sort: str | None
    cursor: str | None
    limit: int


async def list_params(
    filter: Annotated[
        str | None,
        Query(
            description='A filter as JSON: {"and"|"or": [...]} over'
            ' {"field", "op", "value"} conditions',
            examples=['{"and": [{"field": "tags", "op": "has_tag", "value": "vip"}]}'],
        ),
    ] = None,
    sort: Annotated[str | None, Query(description="A sort field; prefix - for descending")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> ListParams:
    parsed = None
    if filter is not None:
        parsed = safejson.loads(filter, what="filter", error=Unprocessable)
        if (problem := safejson.unstorable(parsed, "filter")) is not None:
            field, why = problem
            raise Unprocessable(
                f"{field}: {why}", details=[{"field": safejson.printable(field), "message": why}]
            )
    return ListParams(filter=parsed, sort=sort, cursor=cursor, limit=limit)


ListQuery = Annotated[ListParams, Depends(list_params)]


async def list_of(
    runtime: RuntimeDep,
    key: ApiKeyPrincipal,
    entity: Entity,
    query: ListParams,
    within: dict[str, Any] | None = None,
) -> dict[str, Any]:
    async with runtime.db.user_tx(key) as conn:
        page = await records.list_page(
            conn=conn,
            entity=entity,
            organization_id=key.organization_id,
            filter=query.filter,
            sort=query.sort,
            cursor=query.cursor,
            limit=query.limit,
            within=within,
        )
    return {"data": page.data, "next_cursor": page.next_cursor}


# ---- writes -----------------------------------------------------------------------------------


async def in_tx(
    runtime: RuntimeDep, key: ApiKeyPrincipal, work: Callable[[Connection], Awaitable[T]]
) -> T:
    async with runtime.db.user_tx(key) as conn:
        return await work(conn)


async def idempotent(
    runtime: RuntimeDep,
    key: ApiKeyPrincipal,
    *,
    scope: str,
    idempotency_key: str | None,
    request: Any,
    model: type[M],
    work: Callable[[Connection], Awaitable[dict[str, Any]]],
    status: int = 201,
) -> JSONResponse:
    """A POST run at most once per Idempotency-Key; the answer is shaped by `model`."""

    async def run() -> tuple[int, Any]:
        async with runtime.db.user_tx(key) as conn:
            row = await work(conn)
        return status, model.model_validate(row).model_dump(mode="json")

    answer = await idempotency.once(
        runtime.db,
        principal=key,
        scope=scope,
        key=idempotency_key,
        fingerprint=idempotency.request_hash(scope, request),
        work=run,
        claim_seconds=runtime.settings.claim_seconds,
    )
    return respond(answer)


# ---- documented errors ------------------------------------------------------------------------


_MEANING = {
    401: "No API key, or an unknown or revoked one",
    402: "The plan does not allow it: `plan_limit` (limit, value, usage) or `feature_unavailable`",
    403: "The key may not do this (a read-only key writing)",
    404: "No such record in the key's organization",
    409: "A conflict: a duplicate, or a request with this Idempotency-Key still running",
    413: "The request body is too large",
    422: "Invalid input; the message and details name the field",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return describe_errors(*codes, meaning=_MEANING)


READ = errors(401, 402, 422)
READ_ONE = errors(401, 402, 404, 422)
WRITE = errors(401, 402, 403, 404, 409, 413, 422)
