from __future__ import annotations

import pytest


@pytest.fixture
def waits(provider_waits: list[float]) -> list[float]:
    """The backoff waits the provider client asked for, without sleeping them
    (tests/conftest.py records them for every test)."""
    return provider_waits
