"""CSV imports end to end over the real database: read, map, dedupe, merge, report.

One module world (its own database); each test makes its own organization, so
the tests share nothing but the schema."""

from __future__ import annotations

import io
from typing import Any
from uuid import UUID

import pytest

from shared.db import Connection
from shared.errors import Forbidden, Unprocessable
from shared.imports import runner, upload
from shared.imports.csvfile import NotCsv
from shared.imports.upload import CsvImportOptions
from shared.runtime import Runtime
from tests.support import make_contact, make_org, make_user, member, module_runtime_fixtures
from tests.support import principal as user

runtime, db = module_runtime_fixtures()
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("csv_import")]


async def _org(db: Connection) -> tuple[UUID, UUID]:
    owner = await make_user(db)
    return await make_org(db, owner), owner


async def _import(
    runtime: Runtime, org: UUID, admin: UUID, data: bytes, **options: Any
) -> dict[str, Any]:
    job = await upload.start_import(
        db=runtime.db,
        user_id=admin,
        claims=user(admin).claims,
        organization_id=org,
        file=io.BytesIO(data),
        options=CsvImportOptions.model_validate(options),
    )
    assert await runner.run_job(runtime, job["id"])
    return dict(
        await runtime.db.pool.fetchrow("select * from import_jobs where id = $1", job["id"])
    )


async def _contacts(db: Connection, org: UUID) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "select name, email, phone, custom_fields, company_id from contacts"
        " where organization_id = $1 order by coalesce(email, phone, name)",
        org,
    )
    return [dict(r) for r in rows]


async def _rejected(db: Connection, job: dict[str, Any]) -> str:
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


PEOPLE = "Name,E-mail,Phone number\nAda,ADA@Example.com ,+44 20 7946 0958\nBob,bob@example.com,(415) 555-0123\n"


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [
        ("utf-8", ","),
        ("utf-8-sig", ";"),
        ("utf-16", "\t"),
        ("cp1252", ";"),
        ("utf-16-be", ","),
    ],
)
async def test_every_encoding_and_delimiter(
    runtime: Runtime, db: Connection, encoding: str, delimiter: str
) -> None:
    org, owner = await _org(db)
    text = (
        f'Name{delimiter}E-mail{delimiter}Phone\n'
        f'"Zoë, ""the"" Müller"{delimiter}zoe@example.com{delimiter}+14155550100\n'
        f'"Two\nlines"{delimiter}two@example.com{delimiter}\n'
    ).replace("\n", "\r\n")
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    job = await _import(runtime, org, owner, data)
    assert job["status"] == "completed", job
    assert job["options"]["delimiter"] == delimiter
    assert job["report"]["created"] == 2 and job["report"]["rejected"] == 0
    assert [(c["name"], c["email"], c["phone"]) for c in await _contacts(db, org)] == [
        ("Two\r\nlines", "two@example.com", None),
        ('Zoë, "the" Müller', "zoe@example.com", "+14155550100"),
    ]


async def test_phones_and_emails_are_normalized(runtime: Runtime, db: Connection) -> None:
    org, owner = await _org(db)
    data = (PEOPLE + "Cy,not-an-email,12\n").encode()
    job = await _import(runtime, org, owner, data, default_region="US")
    assert job["report"] | {} == job["report"]
    assert [(c["email"], c["phone"]) for c in await _contacts(db, org)] == [
        ("ada@example.com", "+442079460958"),
        ("bob@example.com", "+14155550123"),
    ]
    report = await _rejected(db, job)
    assert report.splitlines()[0] == "line,Name,E-mail,Phone number,error"
    assert report.splitlines()[1].startswith("4,Cy,not-an-email,12,email:")
    assert "phone:" in report.splitlines()[1]
