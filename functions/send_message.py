"""POST /functions/v1/send-message — an agent's reply into a conversation.

Body: {conversation_id, text?, media_url?, media_type?} or {conversation_id, template},
or {conversation_id, text_template: {id or name, values?}, media_url?, media_type?}: the
organization's text template filled on the server with the contact, the agent, the
conversation and `values` (422 `unknown_text_template`, `template_variable_missing`
before any provider call).
Any member may send. On WhatsApp, free-form messages are refused (422
`outside_window`) once the contact's last message is over 24 hours old; an approved
template — {name, language, header?, body: [values] or {name: value}} — reopens the
conversation, checked against the template before WhatsApp is called (422
`template_not_approved`, `template_parameters`, `unknown_template`).
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
