"""POST /functions/v1/automation-sweep — cron: the time-based events automation rules need.

Service role key only; run it every minute. An open task past its due time gets
one `task.overdue` event per due time (a task given a new due time can become
overdue again); the events worker hands it to the rules. Safe on any number of
instances at once (tasks are taken with FOR UPDATE SKIP LOCKED).
"""

from __future__ import annotations

from fastapi import APIRouter

from shared.automation.sweep import emit_overdue_tasks
from shared.web import RuntimeDep, ServiceCaller, function_app

router = APIRouter()


@router.post("/")
async def run(_: ServiceCaller, runtime: RuntimeDep, limit: int = 500) -> dict[str, int]:
    return {"overdue": await emit_overdue_tasks(runtime.db, limit=max(1, min(limit, 5000)))}


app = function_app(router, name="automation-sweep")
