"""/functions/v1/instagram-webhook/<channel_account_id> — Instagram into the inbox."""

from __future__ import annotations

from shared.inbox.webhooks import webhook_router
from shared.web import function_app

router = webhook_router("instagram")
app = function_app(router, name="instagram-webhook")
