"""What WhatsApp, Messenger and Instagram share: Meta's webhook verification
(the GET challenge and X-Hub-Signature-256), the Graph API's error shape and its
throttling answers."""

from __future__ import annotations

import hashlib
import hmac

from pydantic import BaseModel, Field

from shared.channels.answers import ErrorShape
from shared.channels.base import Account, Channel, Reply, WebhookRequest
from shared.channels.config import ChannelSettings
from shared.errors import Unauthorized


def sign(body: bytes, app_secret: str) -> str:
    """The X-Hub-Signature-256 header value Meta sends for `body`."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class MetaSettings(ChannelSettings, env_prefix="CONNECTGAIN_META_"):
    """Meta's Graph API with its version (WhatsApp, Messenger); a local fake can stand in."""

    graph_url: str = "https://graph.facebook.com/v21.0"


class MetaSetup(BaseModel):
    """What every Meta account holds for its webhook: the app secret that signs the
    deliveries, and the token of the GET verification."""

    app_secret: str = Field(min_length=1)
    verify_token: str = Field(min_length=8)


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

# A Graph API refusal: {"error": {"message", "type", "code", "error_data": {"details"}}}.
GRAPH_ERRORS = ErrorShape(
    provider="Graph API",
    message=("error", "message"),
    code=("error", "code"),
    details=("error", "error_data", "details"),
    throttling_codes=THROTTLING_CODES,
)
graph_throttled = GRAPH_ERRORS.not_processed
