"""The HTTP kit's side of every channel webhook: `/functions/v1/<channel>-webhook/<account id>`.

One function per registered channel, built here from the registry (no module per
channel: functions/channel_webhooks.py serves them all). GET answers the provider's
verification where it has one, POST feeds the inbound pipeline; the channel and the
pipeline return data (a Reply, a delivery's outcome), and only this module speaks HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any
from uuid import UUID

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.bots.gate import known_without
from shared.bots.inline import after_delivery
from shared.channels.base import Channel, WebhookRequest
from shared.channels.registry import CHANNELS, channel_named
from shared.errors import BadRequest, NotFound
from shared.guard import describe_errors
from shared.inbox.accounts import load_account, webhook_slug
from shared.inbox.pipeline import receive
from shared.web import RuntimeDep, SignedRouter, function_app, get_runtime

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _account_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound("No such channel account") from None


async def webhook_request(request: Request, public_base_url: str) -> WebhookRequest:
    body = await request.body()
    form: list[tuple[str, str]] | None = None
    files = []
    if request.headers.get("content-type", "").startswith(FORM_TYPES):
        try:
            # The function's body limit already bounds every part; Starlette's own
            # 1 MB per field would refuse, say, a long e-mail's HTML.
            parsed = await request.form(max_part_size=max(len(body), 1))
        except StarletteHTTPException as exc:  # a broken multipart body
            raise BadRequest(f"The body is not a valid form: {exc.detail}") from exc
        form = []
        for name, value in parsed.multi_items():
            if isinstance(value, UploadFile):
                files.append(
                    {
                        "field": name,
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "size": value.size,
                    }
                )
            else:
                form.append((name, value))
        await parsed.close()  # the uploads' spooled files: only their metadata is kept
    query = f"?{request.url.query}" if request.url.query else ""
    return WebhookRequest(
        method=request.method,
        # Providers sign the URL they called: ours as the public sees it, not as proxied.
        url=f"{public_base_url.rstrip('/')}{request.url.path}{query}",
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params) if query else {},
        body=body,
        form=form,
        files=files,
    )


class DeliverySummary(BaseModel):
    """What became of a delivery's events (a failed one is kept, for the retry job)."""

    received: int
    duplicates: int
    processed: int
    ignored: int
    failed: int


_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_ACCOUNT_PARAMETER: dict[str, Any] = {
    "parameters": [
        {
            "name": "account_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "title": "Account Id"},
        }
    ]
}


def _delivery_body(channel: Channel) -> dict[str, Any]:
    schema = {
        "type": "object",
        "description": f"A {channel.name} delivery as the provider documents and signs it",
    }
    types = channel.body_types
    return {"requestBody": {"required": True, "content": {t: {"schema": schema} for t in types}}}


def webhook_router(channel_name: str) -> APIRouter:
    channel = channel_named(channel_name)
    router = SignedRouter()

    @router.get(
        "/{account_id}",
        summary="The provider's verification of the webhook",
        responses={
            200: {
                "description": "The challenge echoed, or {ok: true}",
                "content": {**_TEXT, "application/json": {"schema": {"type": "object"}}},
            },
            403: {"description": "Not the account's verify token", "content": _TEXT},
            **describe_errors(404),
        },
    )
    async def handshake(account_id: str, request: Request, runtime: RuntimeDep) -> Response:
        async with runtime.db.service_tx() as conn:
            account = await load_account(
                conn=conn, account_id=_account_id(account_id), channel=channel_name
            )
        reply = channel.handshake(
            await webhook_request(request, runtime.settings.public_base_url), account
        )
        if reply is None:
            return JSONResponse({"ok": True})
        return PlainTextResponse(reply.text, status_code=reply.status)

    # The hot path takes the bare Request: FastAPI's parameter and dependency solving
    # was ~9% of a delivery's server CPU (bench/ingest.py). The path parameter is
    # described for the OpenAPI document by hand instead.
    @router.post(
        "/{account_id}",
        summary="A signed delivery from the provider",
        response_model=DeliverySummary,
        responses=describe_errors(400, 401, 404),
        openapi_extra=_delivery_body(channel) | _ACCOUNT_PARAMETER,
    )
    async def deliver(request: Request) -> JSONResponse:
        runtime = await get_runtime(request)
        outcome = await receive(
            runtime,
            channel_name=channel_name,
            account_id=_account_id(request.path_params["account_id"]),
            request=await webhook_request(request, runtime.settings.public_base_url),
        )
        # Bot replies run once the provider has its answer (shared/bots/inline.py).
        after = None
        account = outcome.account
        if (
            outcome.processed
            and outcome.inbound
            and account is not None
            and not known_without(account.organization_id)
        ):
            after = BackgroundTask(
                after_delivery, runtime, account=account, inbound=outcome.inbound
            )
        return JSONResponse(outcome.summary(), background=after)

    return router


@dataclass(frozen=True)
class WebhookFunction:
    """A channel's webhook function, as the gateway reads a function module."""

    router: APIRouter
    MAX_BODY_BYTES: int | None


def webhook_functions() -> dict[str, WebhookFunction]:
    """slug → function, for every registered channel."""
    return {
        webhook_slug(name): WebhookFunction(webhook_router(name), channel.max_body_bytes)
        for name, channel in CHANNELS.items()
    }


@cache
def webhook_app(channel_name: str) -> FastAPI:
    """The channel's webhook function deployed alone (it opens its own Runtime)."""
    channel = channel_named(channel_name)
    return function_app(
        webhook_router(channel_name),
        name=webhook_slug(channel_name),
        max_body_bytes=channel.max_body_bytes,
    )
