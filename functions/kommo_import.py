"""/functions/v1/kommo-import — imports from Kommo (API v4).

POST /                        cron, service key: claim waiting or abandoned Kommo jobs
                              and run them for up to `seconds` (they resume from their
                              checkpoints: shared/imports/kommo/runner.py)
POST /connect, POST /oauth/start, POST /oauth/callback, GET /connection,
POST|GET /jobs, GET /jobs/{id}, POST /jobs/{id}/cancel,
GET /jobs/{id}/report         admins (functions/_api/kommo.py; the public API serves the
                              same routes at /v1/imports/kommo)
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from functions._api.kommo import routes
from shared.imports.kommo import runner
from shared.web import RuntimeDep, ServiceCaller, function_app

router = APIRouter()


@router.post("/")
async def run(
    _: ServiceCaller,
    runtime: RuntimeDep,
    seconds: Annotated[float, Query(ge=0, le=55, description="Keep importing this long")] = 50,
) -> dict[str, Any]:
    return await runner.run(runtime, seconds=seconds)


router.include_router(routes())

app = function_app(router, name="kommo-import", error_statuses=(400, 401, 403, 404, 409, 502))
