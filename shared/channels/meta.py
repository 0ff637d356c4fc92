"""What WhatsApp, Messenger and Instagram share: Meta's webhook verification
(the GET challenge and X-Hub-Signature-256) and the Graph API's error shape."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx

from shared.channels.base import Account, Channel, Reply, WebhookRequest
from shared.channels.http import ProviderError
from shared.errors import Unauthorized


def sign(body: bytes, app_secret: str) -> str:
    """The X-Hub-Signature-256 header value Meta sends for `body`."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class MetaChannel(Channel):
    """A Meta webhook: the account holds `app_secret` and `verify_token`."""

    def handshake(self, request: WebhookRequest, account: Account) -> Reply:
        mode = request.query.get("hub.mode")
        token = request.query.get("hub.verify_token", "")
        expected = account.secret("verify_token")
        if mode == "subscribe" and hmac.compare_digest(token.encode(), expected.encode()):
            return Reply(200, request.query.get("hub.challenge", ""))
        return Reply(403, "verification failed")

    def verify(self, request: WebhookRequest, account: Account) -> None:  # no nonce
        given = request.headers.get("x-hub-signature-256")
        if not given:
            raise Unauthorized("Missing X-Hub-Signature-256", code="invalid_signature")
        expected = sign(request.body, account.secret("app_secret"))
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized("Invalid X-Hub-Signature-256", code="invalid_signature")


def graph_error(response: httpx.Response) -> ProviderError:
    """A Graph API refusal: {"error": {"message", "type", "code", "error_subcode", ...}}."""
    try:
        body: Any = response.json()
    except ValueError:
        body = {"error": {"message": response.text[:500]}}
    error = body.get("error", {}) if isinstance(body, dict) else {}
    details = (error.get("error_data") or {}).get("details")
    message = str(error.get("message") or f"Graph API answered {response.status_code}")
    return ProviderError(
        f"{message} ({details})" if details else message,
        status=response.status_code,
        code=error.get("code"),
        retryable=False,
        body=body,
    )
