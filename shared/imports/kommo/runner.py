"""The `kommo-import` cron: claim waiting or abandoned Kommo jobs and run them.

A job is claimed with FOR UPDATE SKIP LOCKED and a lease (`private.
kommo_import_leases`) committed at once, so no transaction stays open while
Kommo is called; each page renews the lease. A runner that dies leaves the job
to the next once the lease ends, and the job resumes from its checkpoints. A
run that reaches its time budget stops between pages and gives the lease back.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from uuid import UUID

from shared.imports.kommo.client import TokenBucket
from shared.imports.kommo.run import run_kommo_import
from shared.runtime import Runtime

CLAIM = """
with candidate as (
  select j.id, j.organization_id from public.import_jobs j
   where j.source = 'kommo' and j.status in ('pending', 'running') and j.id <> all($3::uuid[])
     and not exists (select 1 from private.kommo_import_leases l
                      where l.job_id = j.id and l.lease_until > now())
   order by j.created_at, j.id
   limit 1
   for update of j skip locked)
insert into private.kommo_import_leases as l (job_id, organization_id, claim, lease_until)
select c.id, c.organization_id, $1, now() + $2 * interval '1 second' from candidate c
on conflict (job_id) do update set claim = excluded.claim, lease_until = excluded.lease_until
 where l.lease_until <= now()
returning job_id
"""


async def claim(
    runtime: Runtime, *, lease_seconds: float, besides: list[UUID]
) -> tuple[UUID, UUID] | None:
    """(job, claim token) of the oldest Kommo job nobody holds (other than `besides`)."""
    token = uuid.uuid4()
    async with runtime.db.service_tx() as conn:
        job: UUID | None = await conn.fetchval(CLAIM, token, lease_seconds, besides)
    return (job, token) if job is not None else None


async def run(
    runtime: Runtime,
    *,
    seconds: float,
    lease_seconds: float = 120.0,
    bucket: TokenBucket | None = None,
) -> dict[str, Any]:
    """Run claimed jobs for about `seconds`; how each ended (or that it goes on)."""
    deadline = time.monotonic() + seconds
    summary = {"claimed": 0, "completed": 0, "failed": 0, "cancelled": 0, "running": 0}
    seen: list[UUID] = []  # each job once per run: one Kommo left waiting is not retried hot
    while time.monotonic() < deadline:
        claimed = await claim(runtime, lease_seconds=lease_seconds, besides=seen)
        if claimed is None:
            break
        job, token = claimed
        seen.append(job)
        summary["claimed"] += 1
        status = await run_kommo_import(
            runtime=runtime,
            job_id=job,
            claim=token,
            lease_seconds=lease_seconds,
            deadline=deadline,
            bucket=bucket,
        )
        if status == "running":
            # stopped for time or an outage: the next run continues at once
            async with runtime.db.service_tx() as conn:
                await conn.execute(
                    "update private.kommo_import_leases set lease_until = now()"
                    " where job_id = $1 and claim = $2",
                    job,
                    token,
                )
        summary[status] = summary.get(status, 0) + 1
    return summary
