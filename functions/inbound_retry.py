"""POST /functions/v1/inbound-retry — cron: process inbound events that failed or were left.

Service role key only. Safe to run on any number of instances at once (rows
are claimed with FOR UPDATE SKIP LOCKED).
"""

from __future__ import annotations

from fastapi import APIRouter

from shared.inbox.pipeline import retry_due
from shared.web import RuntimeDep, ServiceCaller, function_app

router = APIRouter()


@router.post("/")
async def run(_: ServiceCaller, runtime: RuntimeDep, limit: int = 100) -> dict[str, int]:
    outcome = await retry_due(runtime, limit=max(1, min(limit, 1000)))
    return outcome.summary()


app = function_app(router, name="inbound-retry")
