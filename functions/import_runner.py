"""POST /functions/v1/import-runner — cron: run CSV import jobs that wait.

Service role key only; run it every minute. An upload starts its own job at once;
this picks up jobs nobody runs: pending ones, and running ones whose runner went
silent past the lease (a crashed process), which continue from their checkpoint.
Safe on any number of instances: jobs are claimed with FOR UPDATE SKIP LOCKED.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from shared.imports.runner import run_pending
from shared.web import RuntimeDep, ServiceCaller, function_app

router = APIRouter()


@router.post("/")
async def run(
    _: ServiceCaller,
    runtime: RuntimeDep,
    seconds: Annotated[float, Query(ge=0, le=55, description="Take jobs this long")] = 50,
) -> dict[str, int]:
    return await run_pending(runtime, seconds=seconds)


app = function_app(router, name="import-runner")
