"""Refresh tokens rotate as GoTrue rotates them: a spent one may be reused within the
reuse interval after the session's last refresh, or at any time as the current
token's parent, and answers the current session; any other reuse ends the session.
The local Auth's clock is the test's, so the interval is crossed without waiting."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from shared.db import Connection
from shared.settings import Settings
from shared.tooling.gateway import Gateway
from shared.tooling.local_auth import policy_of

PASSWORD = "correct horse battery"
REFRESH = "/auth/v1/token?grant_type=refresh_token"


class Clock:
    """Stands still unless a test moves it; starts a minute ago, so the access tokens
    it stamps in the minute after are valid now."""

    def __init__(self) -> None:
        self.start = self.now = float(int(time.time()) - 60)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(gateway: Gateway) -> Clock:
    clock = Clock()
    gateway.auth.policy = dataclasses.replace(gateway.auth.policy, clock=clock)
    return clock


def anon(settings: Settings) -> dict[str, str]:
    return {"apikey": settings.local_key("anon")}


@pytest.fixture
async def signed_in(settings: Settings, local: httpx.AsyncClient, clock: Clock) -> dict[str, Any]:
    """A session whose first refresh token was issued at the clock's start."""
    response = await local.post(
        "/auth/v1/signup",
        json={"email": "ada@example.com", "password": PASSWORD},
        headers=anon(settings),
    )
    assert response.status_code == 200, response.text
    session: dict[str, Any] = response.json()
    return session


async def refresh(settings: Settings, local: httpx.AsyncClient, token: str) -> httpx.Response:
    return await local.post(REFRESH, json={"refresh_token": token}, headers=anon(settings))


async def rotated(settings: Settings, local: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await refresh(settings, local, token)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["refresh_token"] != token
    return answer


def session_of(answer: dict[str, Any]) -> str:
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    session_id: str = claims["session_id"]
    return session_id


async def tokens(db: Connection) -> int:
    count: int = await db.fetchval("select count(*) from auth.refresh_tokens")
    return count


def test_the_reuse_interval_is_config_tomls(settings: Settings, tmp_path: Path):
    assert policy_of(settings).refresh_token_reuse_seconds == 10.0  # supabase/config.toml
    (tmp_path / "supabase").mkdir()
    (tmp_path / "supabase" / "config.toml").write_text("[auth]\nrefresh_token_reuse_interval = 3\n")
    assert (
        policy_of(settings.model_copy(update={"project_dir": tmp_path})).refresh_token_reuse_seconds
        == 3.0
    )
    empty = settings.model_copy(update={"project_dir": tmp_path / "nowhere"})
    assert policy_of(empty).refresh_token_reuse_seconds == 10.0  # GoTrue's default


async def test_within_the_interval_after_the_last_refresh_reuse_answers_the_current_session(
    settings: Settings,
    local: httpx.AsyncClient,
    db: Connection,
    clock: Clock,
    signed_in: dict[str, Any],
):
    first = signed_in["refresh_token"]
    second = (await rotated(settings, local, first))["refresh_token"]
    clock.now = clock.start + 4
    current = (await rotated(settings, local, second))["refresh_token"]  # the last refresh
    issued = await tokens(db)

    clock.now = clock.start + 14  # the interval's last moment
    again = await refresh(settings, local, first)
    assert again.status_code == 200, again.text
    assert again.json()["refresh_token"] == current  # the session as it is now
    assert session_of(again.json()) == session_of(signed_in)
    assert (
        jwt.decode(again.json()["access_token"], options={"verify_signature": False})["iat"]
        == clock.start + 14
    )
    assert await tokens(db) == issued  # nothing new issued

    # The current token still rotates as usual afterwards.
    assert (await rotated(settings, local, current))["refresh_token"] not in (first, second)


async def test_the_current_tokens_parent_answers_at_any_time(
    settings: Settings,
    local: httpx.AsyncClient,
    db: Connection,
    clock: Clock,
    signed_in: dict[str, Any],
):
    """A client that lost the answer to its refresh tries again with the same token
    (supabase-js counts on it after a refresh it discarded)."""
    first = signed_in["refresh_token"]
    second = (await rotated(settings, local, first))["refresh_token"]
    clock.now = clock.start + 3600
    again = await refresh(settings, local, first)
    assert (again.status_code, again.json()["refresh_token"]) == (200, second)
    assert await tokens(db) == 2


async def test_reuse_after_the_interval_ends_the_session(
    settings: Settings,
    local: httpx.AsyncClient,
    db: Connection,
    clock: Clock,
    signed_in: dict[str, Any],
):
    first = signed_in["refresh_token"]
    second = await rotated(settings, local, first)
    clock.now = clock.start + 4
    current = await rotated(settings, local, second["refresh_token"])  # the last refresh
    clock.now = clock.start + 14.5

    reused = await refresh(settings, local, first)
    assert reused.status_code == 400
    assert reused.json() == {
        "code": 400,
        "error_code": "refresh_token_already_used",
        "msg": "Invalid Refresh Token: Already Used",
    }
    assert await db.fetchval("select count(*) from auth.sessions") == 0
    assert await tokens(db) == 0  # the whole family
    refused = await refresh(settings, local, current["refresh_token"])
    assert (refused.status_code, refused.json()["error_code"]) == (400, "refresh_token_not_found")
    user = await local.get(
        "/auth/v1/user",
        headers={**anon(settings), "Authorization": f"Bearer {current['access_token']}"},
    )
    assert (user.status_code, user.json()["error_code"]) == (403, "session_not_found")


async def test_two_tabs_refreshing_at_once_share_one_new_token(
    settings: Settings,
    local: httpx.AsyncClient,
    db: Connection,
    clock: Clock,
    signed_in: dict[str, Any],
):
    first = signed_in["refresh_token"]
    answers = await asyncio.gather(*(refresh(settings, local, first) for _ in range(3)))
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len({a.json()["refresh_token"] for a in answers}) == 1
    assert await tokens(db) == 2
    assert await db.fetchval("select count(*) from auth.sessions") == 1
