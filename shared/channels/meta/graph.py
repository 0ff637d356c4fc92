"""What WhatsApp, Messenger and Instagram share: Meta's webhook verification
(the GET challenge and X-Hub-Signature-256), the Graph API's error shape and its
throttling answers."""

from __future__ import annotations

import hashlib
import hmac

import httpx

from shared.channels.base import Account, Channel, Reply, WebhookRequest
from shared.channels.config import ChannelSettings
from shared.channels.http import ProviderError, dig, json_body
from shared.errors import Unauthorized


def sign(body: bytes, app_secret: str) -> str:
    """The X-Hub-Signature-256 header value Meta sends for `body`."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class MetaSettings(ChannelSettings, env_prefix="CONNECTGAIN_META_"):
    """Meta's Graph API with its version (WhatsApp, Messenger); a local fake can stand in."""

    graph_url: str = "https://graph.facebook.com/v21.0"


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


# Graph API throttling: the call was turned away before it was processed, so it may
# be repeated. 4 app, 17 user, 32 page and 613 hourly call limits; 80007 the WhatsApp
# Business Account's limit, 130429 Cloud API throughput, 131056 the business/consumer
# pair limit. (131048, the spam limit, is a quality restriction: not retried.)
THROTTLING_CODES = frozenset({4, 17, 32, 613, 80007, 130429, 131056})


def graph_throttled(response: httpx.Response) -> bool:
    """429, or a 4xx whose Graph error code is a throttling one."""
    if response.status_code == 429:
        return True
    if not 400 <= response.status_code < 500:
        return False
    code = dig(json_body(response), "error", "code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    return isinstance(code, int) and code in THROTTLING_CODES


def graph_error(response: httpx.Response) -> ProviderError:
    """A Graph API refusal: {"error": {"message", "type", "code", "error_subcode", ...}}."""
    body = json_body(response)
    if not isinstance(body, dict):
        body = {"error": {"message": body}}
    error = body.get("error")
    error = error if isinstance(error, dict) else {}
    details = dig(error, "error_data", "details")
    message = str(error.get("message") or f"Graph API answered {response.status_code}")
    code = error.get("code")
    return ProviderError(
        f"{message} ({details})" if details else message,
        status=response.status_code,
        code=code if isinstance(code, str | int) else None,
        body=body,
    )
