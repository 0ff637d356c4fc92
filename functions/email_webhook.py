"""/functions/v1/email-webhook/<channel_account_id> — e-mail (Mailgun) into the inbox.

Takes the route's forward of each mail and the domain's delivery-event webhooks.
"""

from __future__ import annotations

from shared.channels.email.channel import MAX_FORWARD_BYTES
from shared.inbox.webhooks import webhook_router
from shared.web import function_app

router = webhook_router("email")
MAX_BODY_BYTES = MAX_FORWARD_BYTES  # a forwarded mail carries its attachments
app = function_app(router, name="email-webhook", max_body_bytes=MAX_BODY_BYTES)
