from __future__ import annotations

import pytest

from shared.channels import http as provider_http


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff waits the provider client asked for, without sleeping them."""
    recorded: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(provider_http, "sleep", fake_sleep)
    return recorded
