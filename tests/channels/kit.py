"""Per channel, how to make a connected account and signed provider deliveries.

The contract tests are written once against this interface and run for every
channel; a channel's kit builds its deliveries from its fixtures (the
provider's documented payloads), changing only ids and text.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import httpx
import respx

from shared.db import Connection
from shared.events import worker
from shared.inbox.profiles import ProfileConsumer
from shared.runtime import Runtime

PUBLIC_BASE_URL = "https://connectgain.example"  # settings.public_base_url in tests


@dataclass
class Delivery:
    """One HTTP request a provider would make to our webhook."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class Account:
    id: UUID
    organization_id: UUID
    secrets: dict[str, Any]


async def fetch_profiles(runtime: Runtime) -> worker.Summary:
    """What the events worker does after a webhook: new contacts' provider profiles."""
    return await worker.run(runtime, consumers=[ProfileConsumer()])


async def insert_account(
    db: Connection,
    org: UUID,
    channel: str,
    external_id: str,
    secrets: dict[str, Any],
    settings: dict[str, Any] | None = None,
) -> Account:
    account_id: UUID = await db.fetchval(
        "insert into channel_accounts (organization_id, channel, name, external_id, settings)"
        " values ($1, $2, $3, $4, $5) returning id",
        org,
        channel,
        f"Test {channel}",
        external_id,
        settings or {},
    )

    await db.execute(
        "insert into private.channel_credentials (channel_account_id, secrets) values ($1, $2)",
        account_id,
        secrets,
    )
    return Account(id=account_id, organization_id=org, secrets=secrets)


def post(
    client: httpx.AsyncClient, kit: Kit, account_id: object, delivery: Delivery
) -> Awaitable[httpx.Response]:
    """A delivery to the channel's webhook for the account, as the provider makes it."""
    return client.post(
        f"/functions/v1/{kit.channel}-webhook/{account_id}",
        content=delivery.body,
        headers=delivery.headers,
        params=delivery.query,
    )


async def counts(db: Connection) -> dict[str, int]:
    tables = ("inbound_events", "contacts", "contact_identities", "conversations", "messages")
    row = await db.fetchrow(
        "select " + ", ".join(f"(select count(*) from {t}) as {t}" for t in tables)
    )
    assert row is not None
    return dict(row)


class Kit(Protocol):
    channel: str
    # The account (external id, secrets) the channel's fixtures are addressed to.
    fixture_account: tuple[str, dict[str, str]]
    # The delivery statuses the provider reports, in the order they happen.
    statuses: tuple[str, ...]
    # Whether a status covers every earlier message to the contact (Meta's watermarks)
    # rather than the one message it names.
    watermarks: bool
    # Whether the provider reports what the business sent from elsewhere (echoes).
    echoes: bool
    # The name a new contact gets from the provider's profile API (None: no such API).
    profile_name: str | None
    # Signs a one-time token (verify() returns it): an exact replay is refused, and a
    # provider's redelivery comes signed anew.
    one_time_tokens: bool
    failure_code: object  # the error code of the kit's failed status, as stored

    async def create_account(self, db: Connection, org: UUID) -> Account: ...
    def refusals(self) -> list[tuple[str, int, Any]]:
        """The provider refusing the credentials as its API documents it: (API base,
        status, body) for each host the channel calls."""

    def mock_provider(self, router: respx.MockRouter) -> respx.Route | None:
        """Mock what the inbox calls on its own (a profile API); that route, if any."""

    def text_message(
        self, account: Account, *, sender: str, message_id: str, text: str
    ) -> Delivery: ...
    def status(
        self, account: Account, *, provider_message_id: str, status: str, recipient: str
    ) -> Delivery: ...
    def echo(self, account: Account, *, recipient: str, message_id: str, text: str) -> Delivery: ...
    def mock_send(self, router: respx.MockRouter) -> respx.Route:
        """Mock the send endpoint to answer with provider message id SENT_ID."""

    def redelivered(self, account: Account, delivery: Delivery) -> Delivery: ...
    def forged(self, delivery: Delivery) -> Delivery: ...
    def unsigned(self, delivery: Delivery) -> Delivery: ...
    def malformed(self, account: Account) -> list[Delivery]:
        """Signed deliveries that are not what the provider sends."""

    def identity(self, sender: str) -> str: ...


SENT_ID = "sent-by-us-1"  # the provider id mock_send answers with


def now_ms() -> int:
    return int(time.time() * 1000)


class BodySigned:
    """Kits whose signature covers the raw body: a redelivery is the same request, and
    a body that is not the provider's can still be signed."""

    one_time_tokens = False

    def signed_raw(self, account: Account, body: bytes) -> Delivery:
        raise NotImplementedError

    def redelivered(self, account: Account, delivery: Delivery) -> Delivery:
        return delivery

    def malformed(self, account: Account) -> list[Delivery]:
        return [self.signed_raw(account, body) for body in (b"{not json", b'{"unexpected": true}')]


class NoEchoes:
    echoes = False
    profile_name: str | None = None

    def echo(self, account: Account, *, recipient: str, message_id: str, text: str) -> Delivery:
        raise NotImplementedError(f"{type(self).__name__} has no echoes")

    def mock_send(self, router: respx.MockRouter) -> respx.Route:
        raise NotImplementedError(f"{type(self).__name__} has no echoes to match sends with")

    def mock_provider(self, router: respx.MockRouter) -> respx.Route | None:
        return None
