"""Mailgun's REST API as the email channel uses it: the region's base URL, its error
shapes, and the account setup connect() makes and disconnect() undoes — a check of
the domain, the route that forwards the inbox address to our webhook, and our URL on
the domain's delivery-event webhooks (which other tools may share: we add and remove
only ours)."""

from __future__ import annotations

import logging
import re
from typing import Any

from shared.channels import answers, http
from shared.channels.config import ChannelSettings
from shared.errors import Unprocessable

log = logging.getLogger("connectgain.channels.mailgun")

# The events the inbox applies. Temporary failures are not final, so not subscribed.
EVENT_WEBHOOKS = ("delivered", "permanent_fail", "opened")
MAX_URLS_PER_WEBHOOK = 3  # Mailgun's limit per event and domain


# A refusal: {"message": ...} as JSON, or plain text (a wrong key gets "Forbidden");
# rate-limit answers may say how long to wait in the body's retry-seconds.
ERRORS = answers.ErrorShape(
    provider="Mailgun", message=("message",), wait=("retry-seconds",), prefixed=True
)


def _urls(webhook: Any) -> list[str]:
    """A webhook's URLs; older domains answer a single "url"."""
    if not isinstance(webhook, dict):
        return []
    urls = webhook.get("urls") or ([webhook["url"]] if webhook.get("url") else [])
    return [str(u) for u in urls]


class MailgunSettings(ChannelSettings, env_prefix="CONNECTGAIN_MAILGUN_"):
    api_url: str = "https://api.mailgun.net"
    eu_api_url: str = "https://api.eu.mailgun.net"  # for domains in Mailgun's EU region


class Mailgun:
    """Calls with one account's API key, in its region (US or EU)."""

    def __init__(self, client: http.ProviderClient, *, api_key: str, region: str | None) -> None:
        self.client = client
        self.api_key = api_key
        settings = MailgunSettings.current()
        self.base = settings.eu_api_url if region == "eu" else settings.api_url

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.client.call(
            method,
            f"{self.base.rstrip('/')}{path}",
            errors=ERRORS,
            auth=("api", self.api_key),
            **kwargs,
        )
        body = answers.json_body(response)
        if not isinstance(body, dict):
            raise answers.unexpected(response, "a JSON object")  # Mailgun may have acted on it
        return body

    async def domain(self, name: str) -> dict[str, Any]:
        """The sending domain; a clear refusal for a wrong key, region or name."""
        try:
            body = await self.call("GET", f"/v4/domains/{name}")
        except answers.ProviderError as exc:
            if exc.status in (401, 403):
                raise Unprocessable(
                    "Mailgun refused the API key: it must be the account's private API key"
                    " (a domain sending key cannot set up routes and webhooks)",
                    code="provider_refused",
                ) from exc
            if exc.status == 404:
                raise Unprocessable(
                    f"Mailgun has no domain {name} on this account in that region",
                    code="provider_refused",
                ) from exc
            raise
        domain: dict[str, Any] = body.get("domain") or {}
        return domain

    async def create_route(self, *, address: str, webhook_url: str) -> str:
        """A route forwarding mail for `address` to our webhook; without stop(), so the
        account's own lower-priority routes for it keep working."""
        body = await self.call(
            "POST",
            "/v3/routes",
            data={
                "priority": "0",
                "description": f"ConnectGain inbox {address}",
                "expression": f'match_recipient("^{re.escape(address)}$")',
                "action": [f'forward("{webhook_url}")'],
            },
        )
        return str(body["route"]["id"])

    async def subscribe(self, *, domain: str, url: str) -> None:
        """Adds `url` to each delivery-event webhook of the domain, keeping its others."""
        webhooks = (await self.call("GET", f"/v3/domains/{domain}/webhooks")).get("webhooks", {})
        for event in EVENT_WEBHOOKS:
            urls = _urls(webhooks.get(event))
            if url in urls:
                continue
            if not urls:
                await self.call(
                    "POST", f"/v3/domains/{domain}/webhooks", data={"id": event, "url": url}
                )
            elif len(urls) >= MAX_URLS_PER_WEBHOOK:
                raise Unprocessable(
                    f"Mailgun's {event} webhook of {domain} already has"
                    f" {MAX_URLS_PER_WEBHOOK} URLs, its maximum: remove one to connect",
                    code="provider_refused",
                )
            else:
                await self.call(
                    "PUT", f"/v3/domains/{domain}/webhooks/{event}", data={"url": [*urls, url]}
                )

    async def teardown(self, *, domain: str, url: str | None, route_id: str | None) -> None:
        """Best effort, step by step: our route, and our URL on the event webhooks."""
        if route_id:
            try:
                await self.call("DELETE", f"/v3/routes/{route_id}")
            except answers.ProviderError as exc:
                if exc.status != 404:
                    log.warning("could not delete Mailgun route %s: %s", route_id, exc)
        if not url:
            return
        try:
            webhooks = (await self.call("GET", f"/v3/domains/{domain}/webhooks")).get(
                "webhooks", {}
            )
            for event in EVENT_WEBHOOKS:
                urls = _urls(webhooks.get(event))
                if url not in urls:
                    continue
                others = [u for u in urls if u != url]
                path = f"/v3/domains/{domain}/webhooks/{event}"
                if others:
                    await self.call("PUT", path, data={"url": others})
                else:
                    await self.call("DELETE", path)
        except answers.ProviderError as exc:
            log.warning("could not remove our Mailgun webhooks from %s: %s", domain, exc)
