"""POST /functions/v1/outbound-sweep — cron: finish outbound messages nobody is finishing.

Service role key only; run it every minute or so. A message left `sending` past
its claim (the server died during the provider call) becomes `unknown` — it is
never sent again by itself — and a message left `queued` longer than a claim
lasts (the server died before the call) becomes `failed`. An Idempotency-Key
linked to the message gets that answer. Safe on any number of instances at once
(rows are claimed with FOR UPDATE SKIP LOCKED).
"""

from __future__ import annotations

from fastapi import APIRouter

from shared.inbox.outbound import sweep
from shared.web import RuntimeDep, ServiceCaller, function_app

router = APIRouter()


@router.post("/")
async def run(_: ServiceCaller, runtime: RuntimeDep, limit: int = 100) -> dict[str, int]:
    return await sweep(runtime, limit=max(1, min(limit, 1000)))


app = function_app(router, name="outbound-sweep")
