"""/functions/v1/<channel>-webhook/<channel_account_id>: every registered channel's
webhook function, built from the registry (shared/webhooks.py), so a new channel
needs no module here.

The gateway serves each of FUNCTIONS under its own slug; deployed alone, a channel's
function is this module's `<channel>_webhook` app
(`uvicorn functions.channel_webhooks:whatsapp_webhook`).
"""

from __future__ import annotations

from fastapi import FastAPI

from shared.channels.registry import CHANNELS
from shared.webhooks import webhook_app, webhook_functions

FUNCTIONS = webhook_functions()


def __getattr__(name: str) -> FastAPI:
    channel_name = name.removesuffix("_webhook")
    if name.endswith("_webhook") and channel_name in CHANNELS:
        return webhook_app(channel_name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
