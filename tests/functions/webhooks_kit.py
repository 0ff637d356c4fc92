"""Webhook endpoints for the events-worker tests: a resolver, an organization's
admins, an endpoint made through the function, and deliveries checked with the
`standardwebhooks` library's Webhook.verify, as a receiver would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from standardwebhooks import Webhook

from shared.db import Connection
from shared.events import egress
from shared.settings import Settings
from tests.support import auth, make_contact, make_org, make_user, member

HOOK = "https://hooks.example.com/connectgain"
SLOW = "https://slow.example.com/hook"


def public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every name resolves to one public address (the sandbox has no DNS)."""

    async def lookup(host: str, port: int) -> list[str]:
        return ["93.184.215.14"]

    monkeypatch.setattr(egress, "lookup", lookup)


async def make_admins(db: Connection) -> dict[str, UUID]:
    owner = await make_user(db)
    org_id = await make_org(db, owner)
    return {
        "org": org_id,
        "admin": await member(db, org_id, "admin"),
        "agent": await member(db, org_id, "agent"),
    }


async def endpoint(
    client: httpx.AsyncClient, settings: Settings, org: dict[str, UUID], url: str, events: list[str]
) -> dict[str, Any]:
    response = await client.post(
        "/functions/v1/webhook-endpoints",
        json={"organization_id": str(org["org"]), "url": url, "events": events},
        headers=auth(settings, org["admin"]),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def hook_and_contact(
    client: httpx.AsyncClient, settings: Settings, db: Connection, org: dict[str, UUID]
) -> dict[str, Any]:
    """An endpoint on HOOK for contact.created, then one contact to deliver."""
    hook = await endpoint(client, settings, org, HOOK, ["contact.created"])
    await make_contact(db, org["org"])
    return hook


def verified(secret: str, request: httpx.Request) -> Any:
    return Webhook(secret).verify(request.content, dict(request.headers))


def later(**wait: float) -> datetime:
    return datetime.now(UTC) + timedelta(**wait)
