"""POST /functions/v1/events-retention — cron: delete what the events worker finished with.

Service role key only; run it every ten minutes. Processed events older than
CONNECTGAIN_EVENTS_RETENTION_DAYS (30) go with their deliveries, webhook attempts
and automation runs; dead letters stay until replayed or
CONNECTGAIN_DEAD_LETTER_RETENTION_DAYS (90) old. Bounded batches
(CONNECTGAIN_EVENTS_RETENTION_BATCH events, up to …_MAX_BATCHES times a run) on an index, so a
run is short whatever the table's size: see shared/events/retention.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from shared.events.retention import purge
from shared.web import RuntimeDep, ServiceCaller, function_app

router = APIRouter()


@router.post("/")
async def run(_: ServiceCaller, runtime: RuntimeDep) -> dict[str, int]:
    return await purge(runtime.db, settings=runtime.settings, now=datetime.now(UTC))


app = function_app(router, name="events-retention")
