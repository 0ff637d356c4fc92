"""/functions/v1/telegram-webhook/<channel_account_id> — Telegram into the inbox."""

from __future__ import annotations

from shared.inbox.webhooks import webhook_router
from shared.web import function_app

router = webhook_router("telegram")
app = function_app(router, name="telegram-webhook")
