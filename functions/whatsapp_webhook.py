"""/functions/v1/whatsapp-webhook/<channel_account_id> — Whatsapp into the inbox."""

from __future__ import annotations

from shared.inbox.webhooks import webhook_router
from shared.web import function_app

router = webhook_router("whatsapp")
app = function_app(router, name="whatsapp-webhook")
