"""What the Meta channels' kits share: X-Hub-Signature-256 and the Messenger
platform's deliveries."""

from __future__ import annotations

import copy
import json
import re
from typing import Any, ClassVar
from uuid import UUID

import httpx
import respx

from shared.channels.meta.graph import MetaSettings, sign
from shared.db import Connection
from tests.channels.kit import SENT_ID, Account, BodySigned, Delivery, insert_account, now_ms
from tests.fixtures import load

GRAPH = MetaSettings.current().graph_url


class MetaSigned(BodySigned):
    """Meta's webhooks: signed with the app secret in X-Hub-Signature-256."""

    api: str = GRAPH  # the Graph host and version the channel calls

    def refusals(self) -> list[tuple[str, int, Any]]:
        return [(self.api, 400, load("messenger", "error_invalid_token"))]

    def signed_raw(self, account: Account, body: bytes) -> Delivery:
        return Delivery(
            body=body,
            headers={
                "X-Hub-Signature-256": sign(body, account.secrets["app_secret"]),
                "Content-Type": "application/json",
            },
        )

    def _signed(self, account: Account, payload: Any) -> Delivery:
        return self.signed_raw(account, json.dumps(payload).encode())

    def forged(self, delivery: Delivery) -> Delivery:
        return Delivery(
            delivery.body,
            {**delivery.headers, "X-Hub-Signature-256": sign(delivery.body, "not-the-secret")},
        )

    def unsigned(self, delivery: Delivery) -> Delivery:
        return Delivery(
            delivery.body, {k: v for k, v in delivery.headers.items() if k != "X-Hub-Signature-256"}
        )

    def identity(self, sender: str) -> str:
        return sender


class MetaMessagingKit(MetaSigned):
    """Messenger and Instagram: one `entry[].messaging[]` event per delivery, built from
    the channel's fixtures; statuses are watermarks, echoes report what the business sent."""

    channel: str
    external_id: str
    secrets: ClassVar[dict[str, str]]
    watermarks = True
    echoes = True
    failure_code: object = None  # Meta reports no failed status

    async def create_account(self, db: Connection, org: UUID) -> Account:
        return await insert_account(db, org, self.channel, self.external_id, dict(self.secrets))

    def mock_provider(self, router: respx.MockRouter) -> respx.Route | None:
        host = httpx.URL(self.api)
        path = rf"^{re.escape(host.path)}/\d+$"  # GET /{user id}: the profile API
        return router.get(host=host.host, path__regex=path, name="profile").respond(
            200, json=load(self.channel, "profile")
        )

    def mock_send(self, router: respx.MockRouter) -> respx.Route:
        answer = {**load(self.channel, "send_response"), "message_id": SENT_ID}
        return router.post(f"{self.api}/{self.external_id}/messages").respond(200, json=answer)

    def _event(self, account: Account, fixture: str, **fields: Any) -> Delivery:
        payload = copy.deepcopy(load(self.channel, fixture))
        event = payload["entry"][0]["messaging"][0]
        for name, value in fields.items():
            if isinstance(value, dict) and isinstance(event.get(name), dict):
                event[name] |= value
            else:
                event[name] = value
        return self._signed(account, payload)

    def text_message(
        self, account: Account, *, sender: str, message_id: str, text: str
    ) -> Delivery:
        return self._event(
            account,
            "text_message",
            sender={"id": sender},
            message={"mid": f"m_{message_id}", "text": text},
        )

    def echo(self, account: Account, *, recipient: str, message_id: str, text: str) -> Delivery:
        return self._event(
            account,
            "echo_message",
            recipient={"id": recipient},
            timestamp=now_ms(),
            message={"mid": message_id, "text": text},
        )
