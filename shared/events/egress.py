"""Where webhook deliveries may go (SSRF): public addresses only, checked at connect time.

A URL's host is resolved and every address it resolves to is checked before a
connection is made; the connection then goes to a checked address (the URL's
host still names the server for TLS and Host), so a DNS answer that changes
between the check and the connect (rebinding) cannot reach anything else.
Redirects are never followed: a 3xx is the endpoint's answer, a failed attempt.

Egress "public" (production): https only, and only globally routable unicast
addresses: no private, loopback, link-local, multicast, reserved or shared
(CGNAT) ranges; IPv6 addresses that carry an IPv4 one (mapped, 6to4, NAT64) are
judged by it. Egress "local" also allows http and loopback, so a receiver on
this machine can be tested.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Literal

import httpcore
import httpx

from shared.errors import Unprocessable
from shared.runtime import tls_context
from shared.settings import Settings

Egress = Literal["public", "local"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RESOLVE_TIMEOUT_SECONDS = 3.0
# NAT64's well-known prefix: the IPv4 address it reaches is in the last 32 bits.
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Refused(Exception):
    """The target is not somewhere a webhook may go; nothing was sent."""


class Unresolvable(Refused):
    """The host has no address."""


def refusal(address: IPAddress, *, egress: Egress) -> str | None:
    """Why a delivery may not connect to `address`, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refusal(embedded, egress=egress)
    if address.is_loopback:
        return None if egress == "local" else "a loopback address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_reserved or address.is_unspecified:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return None


async def lookup(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (the system resolver; the tests replace it)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def addresses(host: str, port: int, *, egress: Egress) -> list[IPAddress]:
    """Every address of `host`, each checked; Refused if any may not be reached."""
    try:
        found: Iterable[str] = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                found = await lookup(host, port)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise Unresolvable(f"{host} does not resolve") from exc
    checked = [ipaddress.ip_address(a.split("%", 1)[0]) for a in dict.fromkeys(found)]
    if not checked:
        raise Unresolvable(f"{host} does not resolve")
    for address in checked:
        reason = refusal(address, egress=egress)
        if reason is not None:
            raise Refused(f"{host} resolves to {address}, {reason}")
    return checked


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network, connecting only to checked addresses of the URL's host."""

    def __init__(self, egress: Egress) -> None:
        self.egress = egress
        self.network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await addresses(host, port, egress=self.egress):
            try:
                return await self.network.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise Refused("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self.network.sleep(seconds)


def client(settings: Settings) -> httpx.AsyncClient:
    """The HTTP client of webhook deliveries: guarded, no redirects, no proxies from
    the environment, a short connect timeout."""
    egress: Egress = settings.webhook_egress or "public"
    transport = httpx.AsyncHTTPTransport(verify=tls_context(), trust_env=False)
    # httpx takes no network backend, so its pool is replaced by one that has ours.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=tls_context(),
        max_connections=settings.webhook_concurrency,
        network_backend=GuardedBackend(egress),
    )
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(
            settings.webhook_timeout_seconds, connect=settings.webhook_connect_timeout_seconds
        ),
    )


async def check_url(url: str, *, egress: Egress) -> str:
    """The URL, if a webhook may be sent there now; a 422 naming the problem if not."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise Unprocessable(f"url: not a URL ({exc})", code="invalid_url") from exc
    schemes = ("https",) if egress == "public" else ("https", "http")
    if parsed.scheme not in schemes:
        raise Unprocessable(
            f"url: the scheme must be {' or '.join(schemes)}, not {parsed.scheme or 'none'}",
            code="url_not_https" if egress == "public" else "invalid_url",
        )
    if not parsed.host:
        raise Unprocessable("url: a host is needed", code="invalid_url")
    if parsed.userinfo:
        raise Unprocessable("url: credentials in the URL are not allowed", code="invalid_url")
    if parsed.fragment:
        raise Unprocessable("url: a fragment is not sent; leave it out", code="invalid_url")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        await addresses(parsed.host, port, egress=egress)
    except Refused as exc:
        code = "url_unresolvable" if isinstance(exc, Unresolvable) else "url_not_public"
        raise Unprocessable(f"url: {exc}", code=code) from exc
    return str(parsed)
