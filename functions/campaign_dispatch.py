"""POST /functions/v1/campaign-dispatch — cron: send the running campaigns' next batches.

Service role key only; run it every minute (it sends one batch per running
campaign, within each channel account's rate). Scheduled campaigns whose time
has come are started first. Safe on any number of instances at once: recipients
are claimed with FOR UPDATE SKIP LOCKED and each message is sent by one caller.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from shared.campaigns.dispatch import dispatch
from shared.web import RuntimeDep, ServiceCaller, function_app

router = APIRouter()


@router.post("/")
async def run(
    _: ServiceCaller,
    runtime: RuntimeDep,
    batch: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, int]:
    return await dispatch(runtime, batch=batch)


app = function_app(router, name="campaign-dispatch")
