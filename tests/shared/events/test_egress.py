"""Where webhooks may go: the address rules, and the check made again at connect time."""

from __future__ import annotations

import ipaddress

import httpx
import pytest
import respx

from shared.events import egress
from shared.settings import Settings

PUBLIC = "93.184.215.14"


@pytest.mark.parametrize(
    ("address", "public", "local"),
    [
        (PUBLIC, None, None),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", None, None),
        ("127.0.0.1", "a loopback address", None),
        ("::1", "a loopback address", None),
        ("10.1.2.3", "a private address", "a private address"),
        ("172.16.0.1", "a private address", "a private address"),
        ("192.168.1.1", "a private address", "a private address"),
        ("fd00::1", "a private address", "a private address"),
        ("169.254.169.254", "a link-local address", "a link-local address"),
        ("fe80::1", "a link-local address", "a link-local address"),
        ("224.0.0.251", "a multicast address", "a multicast address"),
        ("ff02::1", "a multicast address", "a multicast address"),
        ("0.0.0.0", "a reserved address", "a reserved address"),  # noqa: S104
        ("240.0.0.1", "a reserved address", "a reserved address"),
        ("100.64.0.1", "not a public address", "not a public address"),  # CGNAT
        ("::ffff:10.0.0.1", "a private address", "a private address"),  # IPv4-mapped
        ("::ffff:127.0.0.1", "a loopback address", None),
        ("2002:a00:1::", "a private address", "a private address"),  # 6to4 of 10.0.0.1
        ("64:ff9b::a9fe:a9fe", "a link-local address", "a link-local address"),  # NAT64
        (f"64:ff9b::{ipaddress.IPv4Address(PUBLIC)}", None, None),
    ],
)
def test_only_public_unicast_addresses_are_targets(
    address: str, public: str | None, local: str | None
):
    ip = ipaddress.ip_address(address)
    assert egress.refusal(ip, egress="public") == public
    assert egress.refusal(ip, egress="local") == local


async def test_the_address_is_checked_again_when_connecting(monkeypatch: pytest.MonkeyPatch):
    """DNS rebinding: the name was public when the endpoint was saved, private now."""
    answers = {"hooks.example.com": [PUBLIC]}

    async def lookup(host: str, port: int) -> list[str]:
        return answers[host]

    monkeypatch.setattr(egress, "lookup", lookup)
    url = "https://hooks.example.com/in"
    assert await egress.check_url(url, egress="public") == url
    answers["hooks.example.com"] = [PUBLIC, "10.0.0.7"]
    settings = Settings(mode="local", webhook_egress="public", _env_file=None)  # type: ignore[call-arg]
    async with egress.client(settings) as http:
        with pytest.raises(egress.Refused, match=r"10\.0\.0\.7, a private address"):
            await http.post(url, content=b"{}")


async def test_redirects_are_not_followed_and_timeouts_are_short():
    settings = Settings(mode="local", _env_file=None)  # type: ignore[call-arg]
    metadata = "http://169.254.169.254/latest/meta-data/"
    async with egress.client(settings) as http, respx.mock as router:
        router.post("https://hooks.example.com/in").respond(302, headers={"location": metadata})
        inside = router.get(metadata).respond(200)
        answer = await http.post("https://hooks.example.com/in", content=b"{}")
        assert answer.status_code == 302 and not inside.called
        assert http.timeout == httpx.Timeout(10.0, connect=3.0)


def test_production_refuses_local_egress():
    with pytest.raises(ValueError, match="WEBHOOK_EGRESS=local"):
        Settings(
            mode="production",
            service_role_key="k",
            jwt_secret="a-project-secret-that-is-long-enough-for-hs256",
            cors_origins="https://app.example.com",
            webhook_egress="local",
            _env_file=None,  # type: ignore[call-arg]
        )
    production = Settings(
        mode="production",
        service_role_key="k",
        jwt_secret="a-project-secret-that-is-long-enough-for-hs256",
        cors_origins="https://app.example.com",
        _env_file=None,  # type: ignore[call-arg]
    )
    assert production.webhook_egress == "public"
    assert Settings(mode="local", _env_file=None).webhook_egress == "local"  # type: ignore[call-arg]
