"""/functions/v1/messenger-webhook/<channel_account_id> — Messenger into the inbox."""

from __future__ import annotations

from shared.inbox.webhooks import webhook_router
from shared.web import function_app

router = webhook_router("messenger")
app = function_app(router, name="messenger-webhook")
