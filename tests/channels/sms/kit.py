"""SMS (Twilio): accounts and signed deliveries for the contract tests."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode
from uuid import UUID

from shared.channels.sms.channel import SmsSettings
from shared.channels.sms.channel import signature as twilio_signature
from shared.db import Connection
from tests.channels.kit import (
    PUBLIC_BASE_URL,
    Account,
    BodySigned,
    Delivery,
    NoEchoes,
    insert_account,
)
from tests.fixtures import load


class SmsKit(BodySigned, NoEchoes):
    """Twilio posts forms and signs the public URL plus the sorted parameters."""

    channel = "sms"
    # The account (external id, secrets) the fixtures are addressed to.
    fixture_account: tuple[str, dict[str, str]] = (
        "+14155550100",
        {"account_sid": "AC3f4a2b9c8d7e6f5a4b3c2d1e0f9a8b7c"},
    )
    statuses: tuple[str, ...] = ("sent", "delivered", "read", "failed")
    watermarks = False
    failure_code: object = "30008"
    account_sid = "AC3f4a2b9c8d7e6f5a4b3c2d1e0f9a8b7c"

    def refusals(self) -> list[tuple[str, int, Any]]:
        return [(SmsSettings.current().api_url, 401, load("sms", "error_authenticate"))]

    async def create_account(self, db: Connection, org: UUID) -> Account:
        secrets = {"account_sid": self.account_sid, "auth_token": "twilio-auth-token-0123456789"}
        return await insert_account(db, org, "sms", "+14155550100", secrets)

    def url(self, account: Account) -> str:
        return f"{PUBLIC_BASE_URL}/functions/v1/sms-webhook/{account.id}"

    def signed_form(self, account: Account, params: list[tuple[str, str]]) -> Delivery:
        return Delivery(
            body=urlencode(params).encode(),
            headers={
                "X-Twilio-Signature": twilio_signature(
                    self.url(account), params, account.secrets["auth_token"]
                ),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )

    def signed_raw(self, account: Account, body: bytes) -> Delivery:
        params = parse_qsl(body.decode(), keep_blank_values=True)
        return Delivery(body, self.signed_form(account, params).headers)

    def text_message(
        self, account: Account, *, sender: str, message_id: str, text: str
    ) -> Delivery:
        form = load("sms", "text_message") | {
            "From": f"+{sender}",
            "Body": text,
            "MessageSid": f"SM{message_id}",
            "SmsSid": f"SM{message_id}",
            "SmsMessageSid": f"SM{message_id}",
        }
        return self.signed_form(account, list(form.items()))

    def status(
        self, account: Account, *, provider_message_id: str, status: str, recipient: str
    ) -> Delivery:
        form = load("sms", f"status_{status}") | {
            "MessageSid": provider_message_id,
            "SmsSid": provider_message_id,
            "To": recipient if recipient.startswith("+") else f"+{recipient}",
        }
        return self.signed_form(account, list(form.items()))

    def forged(self, delivery: Delivery) -> Delivery:
        return Delivery(
            delivery.body, {**delivery.headers, "X-Twilio-Signature": "bm90IHRoZSBzaWduYXR1cmU="}
        )

    def unsigned(self, delivery: Delivery) -> Delivery:
        return Delivery(
            delivery.body, {k: v for k, v in delivery.headers.items() if k != "X-Twilio-Signature"}
        )

    def identity(self, sender: str) -> str:
        return f"+{sender}"


KIT = SmsKit()
