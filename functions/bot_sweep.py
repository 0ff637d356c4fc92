"""POST /functions/v1/bot-sweep — cron: bot sessions the clock moves on.

Service role key only; run it every minute. Sessions waiting on a delay whose time
has come go on from it (their messages sent through the inbox's send path); live
sessions idle past their flow's timeout end `timed_out`. Safe on any number of
instances at once: the timeouts are claimed with FOR UPDATE SKIP LOCKED, and each
resumed session runs under its conversation's lock.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from shared.bots.sweep import sweep
from shared.web import RuntimeDep, ServiceCaller, function_app

router = APIRouter()


@router.post("/")
async def run(
    _: ServiceCaller,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> dict[str, int]:
    return await sweep(runtime, limit=limit)


app = function_app(router, name="bot-sweep")
