"""POST /functions/v1/send-message — an agent's reply into a conversation.

Body: {conversation_id, text?, media_url?, media_type?}. Any member may send.
`Idempotency-Key` makes a retried request send once and get the same answer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from shared import idempotency
from shared.inbox.sending import SendRequest, send_message
from shared.web import CurrentUser, RuntimeDep, function_app

router = APIRouter()


@router.post("/", status_code=201)
async def send(
    body: SendRequest,
    user: CurrentUser,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    async def work() -> tuple[int, object]:
        return 201, await send_message(runtime, user=user, request=body)

    return await idempotency.once(
        runtime.db,
        principal=user,
        scope="send-message",
        key=idempotency_key,
        fingerprint=idempotency.request_hash(body.model_dump(mode="json")),
        work=work,
    )


app = function_app(router, name="send-message")
