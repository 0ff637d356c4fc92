"""/functions/v1/events-worker — domain events to their consumers (outbound webhooks …).

POST /                                  cron, service key: dispatch the outbox, deliver
                                        what is due, answer a summary
GET  /dead-letters?organization_id=…    admins: deliveries whose retries are spent
POST /deliveries/{delivery_id}/replay   admins: start a finished delivery over (a dead
                                        letter, or a done one sent again)

Safe on any number of instances at once: events and deliveries are claimed with
FOR UPDATE SKIP LOCKED, deliveries under a lease (shared/events/worker.py).
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query

from shared import members
from shared.events import letters, worker
from shared.web import CurrentUser, RuntimeDep, ServiceCaller, function_app

router = APIRouter()


@router.post("/")
async def run(
    _: ServiceCaller,
    runtime: RuntimeDep,
    limit: Annotated[int | None, Query(ge=1, le=5000)] = None,
) -> dict[str, int]:
    summary = await worker.run(runtime, limit=limit)
    return summary.as_dict()


@router.get("/dead-letters")
async def dead_letters(
    organization_id: UUID,
    user: CurrentUser,
    runtime: RuntimeDep,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        await members.require_role(conn=conn, organization_id=organization_id, at_least="admin")
        found = await letters.dead_letters(
            conn=conn, organization_id=organization_id, before=before, limit=limit
        )
    return {"data": found}


@router.post("/deliveries/{delivery_id}/replay")
async def replay(
    delivery_id: Annotated[int, Path(ge=1, le=2**62)], user: CurrentUser, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.db.user_tx(user) as conn:
        return await letters.replay(conn=conn, delivery_id=delivery_id)


app = function_app(router, name="events-worker")
