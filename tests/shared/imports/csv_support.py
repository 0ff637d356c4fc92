"""Helpers of the CSV import tests: an organization, an import run to its end, what
it stored, its error report."""

from __future__ import annotations

import io
from typing import Any
from uuid import UUID

from shared.db import Connection
from shared.imports import runner, upload
from shared.imports.upload import CsvImportOptions
from shared.runtime import Runtime
from tests.support import make_org, make_user


async def org_and_owner(db: Connection) -> tuple[UUID, UUID]:
    owner = await make_user(db)
    return await make_org(db, owner), owner


async def stage(
    runtime: Runtime, org: UUID, admin: UUID, data: bytes, **options: Any
) -> dict[str, Any]:
    """The file uploaded by `admin`: its job, pending."""
    return await upload.start_import(
        db=runtime.db,
        user_id=admin,
        organization_id=org,
        file=io.BytesIO(data),
        options=CsvImportOptions.model_validate(options),
    )


async def run_import(
    runtime: Runtime, org: UUID, admin: UUID, data: bytes, **options: Any
) -> dict[str, Any]:
    job = await stage(runtime, org, admin, data, **options)
    assert await runner.run_job(runtime, job["id"])
    return dict(
        await runtime.db.pool.fetchrow("select * from import_jobs where id = $1", job["id"])
    )


async def contacts_of(db: Connection, org: UUID) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "select name, email, phone, custom_fields, company_id from contacts"
        " where organization_id = $1 order by coalesce(email, phone, name)",
        org,
    )
    return [dict(r) for r in rows]


async def rejected_report(db: Connection, job: dict[str, Any]) -> str:
    async with db.transaction():
        chunks = [
            c
            async for c in runner.rejected_csv(
                db,
                job_id=job["id"],
                organization_id=job["organization_id"],
                columns=job["options"]["columns"],
            )
        ]
    return b"".join(chunks).decode()
