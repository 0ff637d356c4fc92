"""/functions/v1/sms-webhook/<channel_account_id> — SMS and MMS (Twilio) into the inbox."""

from __future__ import annotations

from shared.inbox.webhooks import webhook_router
from shared.web import function_app

router = webhook_router("sms")
app = function_app(router, name="sms-webhook")
