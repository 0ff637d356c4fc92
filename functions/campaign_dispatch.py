"""POST /functions/v1/campaign-dispatch — cron: send the running campaigns' next batches.

Service role key only; run it every minute (it sends batch after batch for up to
`seconds`, within each channel account's rate). Scheduled campaigns whose time
has come are started first. Safe on any number of instances at once: recipients
are claimed with FOR UPDATE SKIP LOCKED and each message is sent by one caller.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from shared.campaigns.runs import run as dispatch
from shared.web import RuntimeDep, ServiceCaller, function_app

router = APIRouter()


@router.post("/")
async def run(
    _: ServiceCaller,
    runtime: RuntimeDep,
    batch: Annotated[int, Query(ge=1, le=1000)] = 100,
    seconds: Annotated[float, Query(ge=0, le=55, description="Keep sending this long")] = 50,
) -> dict[str, int]:
    return await dispatch(runtime, batch=batch, seconds=seconds)


app = function_app(router, name="campaign-dispatch")
