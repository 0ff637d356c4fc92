"""POST /functions/v1/sla-sweep — cron: SLA clocks past their due time become breached.

Service role key only; run it every minute. Each running clock found past its due
time is marked breached and an `sla.breached` event is written to the outbox in
the same transaction, so webhooks carry it and no clock is announced twice. Safe
on any number of instances at once (FOR UPDATE SKIP LOCKED).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from shared.sla.consumer import sweep
from shared.web import RuntimeDep, ServiceCaller, function_app

router = APIRouter()


@router.post("/")
async def run(
    _: ServiceCaller,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, int]:
    return await sweep(runtime, now=datetime.now(UTC), limit=limit)


app = function_app(router, name="sla-sweep")
