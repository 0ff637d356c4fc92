"""Provider fixtures through a channel's own parsing (events, then parse), no database:
an account as the channel kits connect it, a webhook request as the provider sends it."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from shared.channels.base import Account, Parsed, RawEvent, WebhookRequest
from shared.channels.registry import CHANNELS
from tests.channels.kits import KITS
from tests.fixtures import load, raw

ORGANIZATION = UUID("00000000-0000-4000-8000-000000000001")
# The account the email fixtures' events name in their user-variables (sent by this inbox).
EMAIL_ACCOUNT = UUID("3f0c6a52-8d1e-4b7a-9c2f-5e8d7a1b4c90")


def account(channel: str, external_id: str | None = None) -> Account:
    default, secrets = KITS[channel].fixture_account
    return Account(
        id=EMAIL_ACCOUNT if channel == "email" else UUID(int=1),
        organization_id=ORGANIZATION,
        channel=channel,
        name=f"Test {channel}",
        external_id=external_id or default,
        settings={},
        status="active",
        secrets=secrets,
    )


def request(channel: str, fixture: str) -> WebhookRequest:
    """The fixture as its provider posts it: JSON, or form fields (Twilio, Mailgun's forwards)."""
    url = f"https://connectgain.example/functions/v1/{channel}-webhook/{UUID(int=1)}"
    fields = load(channel, fixture)
    if channel == "sms" or (channel == "email" and "event-data" not in fields):
        form = [(name, str(value)) for name, value in fields.items()]
        return WebhookRequest(method="POST", url=url, headers={}, query={}, body=b"", form=form)
    body = raw(channel, fixture)
    return WebhookRequest(method="POST", url=url, headers={}, query={}, body=body)


def events(channel: str, fixture: str) -> list[RawEvent]:
    return CHANNELS[channel].events(request(channel, fixture), account(channel))


def parsed(channel: str, fixture: str, external_id: str | None = None) -> list[Parsed]:
    """Every event of the fixture, parsed for the account (stored and reloaded as JSON,
    as the inbox does between receiving and processing)."""
    target = account(channel, external_id)
    return [
        CHANNELS[channel].parse(
            RawEvent.model_validate(json.loads(event.model_dump_json())), target
        )
        for event in events(channel, fixture)
    ]


def only(channel: str, fixture: str) -> Any:
    [one] = parsed(channel, fixture)
    return one
