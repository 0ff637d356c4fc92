"""The bots' clock: idle sessions time out and delays resume. Graph's send endpoint is
mocked with respx."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import respx

from shared.bots.sweep import sweep
from shared.db import Connection
from shared.runtime import Runtime
from tests.shared.bots.flows import chain, node
from tests.shared.bots.kit import (
    keyword,
    make_flow,
    mock_sends,
    say,
    sent_texts,
    session_of,
    world,
)


async def test_idle_sessions_time_out_and_delays_resume(
    client: httpx.AsyncClient, runtime: Runtime, db: Connection
) -> None:
    w = await world(db)
    flow = chain(
        node("hi", "send_message", text="wait for it"),
        node("pause", "wait", seconds=120),
        node("q", "ask", text="still there?", variable="x"),
        x="text",
    )
    await make_flow(db, w.org, flow, triggers=keyword("go"), timeout_seconds=600)
    with respx.mock as router:
        sends = mock_sends(router)
        await say(client, w, "go")
        session = await session_of(db, w.org)
        assert session["status"] == "waiting" and session["resume_at"] is not None
        now = datetime.now(UTC)
        assert await sweep(runtime, now=now) == {"resumed": 0, "timed_out": 0, "forgotten": 0}
        counts = await sweep(runtime, now=now + timedelta(seconds=121))
        assert counts["resumed"] == 1 and sent_texts(sends) == ["wait for it", "still there?"]
    assert (await session_of(db, w.org))["status"] == "waiting"
    counts = await sweep(runtime, now=now + timedelta(seconds=60 * 60))
    assert counts["timed_out"] == 1
    ended = await session_of(db, w.org)
    assert (
        ended["status"] == "timed_out" and ended["end_reason"] == "no activity within the timeout"
    )
