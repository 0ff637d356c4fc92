"""POST /functions/v1/send-message — an agent's reply into a conversation.

Body: {conversation_id, text?, media_url?, media_type?}. Any member may send.
`Idempotency-Key` makes a retried request send at most once and get the same answer.

201 with the sent message. Provider trouble is never a 500: 502
`provider_rejected` (the provider refused it; the message is failed), 502
`provider_outcome_unknown` (it may have been sent; the message is unknown and is
not sent again by itself), 503 `provider_unavailable` (nothing was sent; a retry
with the same key sends). 409 `send_in_progress` while the first request's send
is under way.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from shared.inbox.sending import SendRequest, send_message
from shared.web import CurrentUser, RuntimeDep, function_app, respond

router = APIRouter()


@router.post("/", status_code=201)
async def send(
    body: SendRequest,
    user: CurrentUser,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    return respond(await send_message(runtime, user=user, request=body, key=idempotency_key))


app = function_app(router, name="send-message")
