"""A local Kommo (API v4) for the tests: respx routes serving the documented
payloads of tests/fixtures/kommo, as Kommo does: bearer tokens checked (401
problem+json), HAL pages with `_links.next`, 204 past the last page or when
nothing changed since `If-Modified-Since`, scripted failures (429 with
Retry-After, 503) for given requests, and OAuth 2.0's token endpoint
(`/oauth2/access_token`: an authorization code or a refresh token, each good
once, for a new access token that replaces the one the API accepts)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import respx

from tests.fixtures import load

# path under /api/v4 → (_embedded key, fixture per page)
LISTS: dict[str, tuple[str, list[str]]] = {
    "users": ("users", ["users"]),
    "leads/custom_fields": ("custom_fields", ["leads_custom_fields"]),
    "contacts/custom_fields": ("custom_fields", ["contacts_custom_fields"]),
    "companies/custom_fields": ("custom_fields", ["companies_custom_fields"]),
    "companies": ("companies", ["companies"]),
    "contacts": ("contacts", ["contacts", "contacts_page2"]),
    "leads": ("leads", ["leads"]),  # its page 1 links a page 2, which is empty: 204
    "leads/notes": ("notes", ["leads_notes"]),
    "contacts/notes": ("notes", ["contacts_notes"]),
    "companies/notes": ("notes", ["companies_notes"]),
    "tasks": ("tasks", ["tasks"]),
}
SINGLE = {"account": "account", "leads/pipelines": "pipelines"}


@dataclass
class FakeKommo:
    subdomain: str = "acme"
    token: str = "long-lived-token"
    pages: dict[str, Any] = field(default_factory=dict)
    # (path, page) → answers to give first, in order
    failures: dict[tuple[str, int], list[httpx.Response]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    clock: Callable[[], float] = lambda: 0.0  # the limiter's, to stamp each request
    # OAuth 2.0: the integration, the codes not yet exchanged, the refresh token Kommo holds
    client_id: str = "8f1a6c2e-5b7d-4e39-9a0c-3d2b1e4f5a6b"
    client_secret: str = "integration-secret"
    redirect_uri: str = "https://app.connectgain.example/kommo/connected"
    codes: set[str] = field(default_factory=set)
    refresh_token: str | None = None
    issued: int = 0

    def __post_init__(self) -> None:
        names = {n for _, files in LISTS.values() for n in files} | set(SINGLE.values())
        self.pages = {name: load("kommo", name) for name in names}

    @property
    def host(self) -> str:
        return f"{self.subdomain}.kommo.com"

    def install(self, router: respx.Router | None = None) -> respx.Route:
        route = (router or respx).route(host=self.host)
        return route.mock(side_effect=self.answer)

    def items(self, name: str, key: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.pages[name]["_embedded"][key]
        return found

    def answer(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/access_token":
            return self.grant(request)
        path = request.url.path.removeprefix("/api/v4/")
        page = int(request.url.params.get("page", "1"))
        since = request.headers.get("if-modified-since")
        self.requests.append({"path": path, "page": page, "since": since, "at": self.clock()})
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return httpx.Response(
                401,
                json=load("kommo", "unauthorized"),
                headers={"content-type": "application/problem+json"},
            )
        if queued := self.failures.get((path, page)):
            return queued.pop(0)
        if path in SINGLE:
            return httpx.Response(200, json=self.pages[SINGLE[path]])
        if path not in LISTS:
            return httpx.Response(404, json={"title": "Not Found", "status": 404, "detail": path})
        key, files = LISTS[path]
        if page > len(files):
            return httpx.Response(204)
        body = copy.deepcopy(self.pages[files[page - 1]])
        if since is not None:
            moment = parsedate_to_datetime(since).timestamp()
            body["_embedded"][key] = [
                i for i in body["_embedded"][key] if i.get("updated_at", 0) >= moment
            ]
            if not body["_embedded"][key]:
                return httpx.Response(204)
        return httpx.Response(200, json=body, headers={"content-type": "application/hal+json"})

    def grant(self, request: httpx.Request) -> httpx.Response:
        """POST /oauth2/access_token: a code or the refresh token → a new pair."""
        body = json.loads(request.content)
        self.requests.append({"path": "oauth2/access_token", "page": 1, "body": body})
        if queued := self.failures.get(("oauth2/access_token", 1)):
            return queued.pop(0)
        grant = body.get("grant_type")
        good = (
            request.method == "POST"
            and (body.get("client_id"), body.get("client_secret"))
            == (self.client_id, self.client_secret)
            and body.get("redirect_uri") == self.redirect_uri
            and (
                (grant == "authorization_code" and body.get("code") in self.codes)
                or (grant == "refresh_token" and body.get("refresh_token") == self.refresh_token)
            )
        )
        if not good:
            return httpx.Response(400, json=load("kommo", "oauth_invalid_grant"))
        self.codes.discard(body.get("code"))
        self.issued += 1
        answer = load("kommo", "oauth_token") | {
            "access_token": f"access-{self.issued}",
            "refresh_token": f"refresh-{self.issued}",
        }
        self.token, self.refresh_token = answer["access_token"], answer["refresh_token"]
        return httpx.Response(200, json=answer)

    def paths(self) -> list[tuple[str, int]]:
        return [(r["path"], r["page"]) for r in self.requests]


def throttled(seconds: int) -> httpx.Response:
    return httpx.Response(
        429, json=load("kommo", "too_many_requests"), headers={"retry-after": str(seconds)}
    )


def blocked() -> httpx.Response:
    return httpx.Response(
        403,
        json={
            "title": "Forbidden",
            "type": "https://httpstatus.es/403",
            "status": 403,
            "detail": "Forbidden",
        },
    )


def unavailable() -> httpx.Response:
    return httpx.Response(503, text="Service Unavailable")


@dataclass
class FakeClock:
    """The rate limiter's clock: it moves only when the limiter sleeps."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
