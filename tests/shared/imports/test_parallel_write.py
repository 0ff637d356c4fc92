"""The write phase of a CSV import on two connections at once: batches of one line
each (CHUNK_ROWS = 1), so every duplicate, chain and bad row spans batches."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import asyncpg
import pytest

from shared.db import Connection
from shared.imports import plan, runner
from shared.runtime import Runtime
from tests.shared.imports.csv_support import (
    contacts_of,
    org_and_owner,
    rejected_report,
    run_import,
    stage,
)
from tests.support import make_contact, module_runtime_fixtures
from tests.support import principal as user
from tests.support_crm import define_field

runtime, db = module_runtime_fixtures()
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("csv_parallel")]

P1, P4 = "+14155550101", "+14155550104"
# a chain: line 3 shares line 2's e-mail and line 4's phone, line 5 is line 4 again
CHAIN = (
    b"Name,Email,Phone\n"
    b"Ann,a@x.com,\n"
    b"Ann B,a@x.com,+14155550101\n"
    b"Cy,c@x.com,+14155550101\n"
    b"Cy 2,c@x.com,\n"
    b"Dee,d@x.com,+14155550104\n"
)


CHAINED = {
    # line 5 shares line 4's e-mail: it is skipped as a duplicate of the contact line 4 made
    "skip": ([], [("Ann", "a@x.com", None), ("Cy", "c@x.com", P1), ("Dee", "d@x.com", P4)]),
    # lines 2-3 make Ann with line 3's phone, line 5 makes c@x.com: line 4's phone is then
    # Ann's and its e-mail the other's, and it is rejected
    "update_empty": (
        ["4"],
        [("Ann", "a@x.com", P1), ("Cy 2", "c@x.com", None), ("Dee", "d@x.com", P4)],
    ),
    "overwrite": (
        ["4"],
        [("Ann B", "a@x.com", P1), ("Cy 2", "c@x.com", None), ("Dee", "d@x.com", P4)],
    ),
}


@pytest.mark.parametrize("mode", list(CHAINED))
async def test_a_chain_of_duplicates_is_written_as_one_batch_would(
    runtime: Runtime, db: Connection, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    reports = []
    for chunk in (100, 1):  # one batch; a batch per line (the chain: batch -1)
        monkeypatch.setattr(runner, "CHUNK_ROWS", chunk)
        org, owner = await org_and_owner(db)
        job = await run_import(runtime, org, owner, CHAIN, dedupe=mode)
        assert job["status"] == "completed"
        assert job["report"]["processed"] == job["report"]["total"] == 5
        rejected, contacts = CHAINED[mode]
        report = list(csv.reader(io.StringIO(await rejected_report(db, job))))
        assert [r[0] for r in report[1:]] == rejected
        stored = [(c["name"], c["email"], c["phone"]) for c in await contacts_of(db, org)]
        assert stored == contacts
        reports.append(job["report"])
    assert reports[0] == reports[1]


async def test_a_bad_row_is_rejected_alone_even_inside_a_group(
    runtime: Runtime, db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "CHUNK_ROWS", 2)
    org, owner = await org_and_owner(db)
    await define_field(db, org, "contact", "site", "url")
    rows = [f"p{i}@x.com,https://p{i}.example" for i in range(8)]
    rows.insert(3, "p1@x.com,not a url")  # p1 again (latest wins), a value the database refuses
    rows.insert(6, "bad@x.com,not a url")
    data = ("Email,Site\n" + "\n".join(rows) + "\n").encode()
    job = await run_import(runtime, org, owner, data, dedupe="overwrite")
    assert job["status"] == "completed"
    assert (job["report"]["created"], job["report"]["rejected"]) == (8, 2)
    assert job["report"]["processed"] == 10
    contacts = await contacts_of(db, org)
    assert [c["custom_fields"] for c in contacts] == [
        {"site": f"https://p{i}.example"} for i in range(8)
    ]
    lines = list(csv.reader(io.StringIO(await rejected_report(db, job))))
    assert [(r[0], r[1]) for r in lines[1:]] == [("5", "p1@x.com"), ("8", "bad@x.com")]
    assert {r[-1] for r in lines[1:]} == {"custom_fields.site: must be an http or https URL"}


@pytest.mark.parametrize(("mode", "outcome"), [("overwrite", "updated"), ("skip", "skipped")])
async def test_a_contact_an_inbound_message_creates_meanwhile_is_matched(
    runtime: Runtime,
    db: Connection,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    outcome: str,
) -> None:
    """After the plan found no contact for line 3, an inbound message creates one with
    its phone; its transaction is still open when the import inserts, then commits."""
    monkeypatch.setattr(runner, "CHUNK_ROWS", 1)
    org, owner = await org_and_owner(db)
    planned = plan.plan
    inbound: list[asyncio.Task[None]] = []

    async def meanwhile(**kwargs: Any) -> tuple[int, int]:
        done = await planned(**kwargs)
        conn = await runtime.db.pool.acquire()
        tx = conn.transaction()
        await tx.start()
        await conn.execute(
            "insert into contacts (organization_id, name, phone, source)"
            " values ($1, 'From WhatsApp', '+14155550102', 'inbound')",
            org,
        )

        async def commit_later() -> None:
            await asyncio.sleep(0.2)
            await tx.commit()
            await runtime.db.pool.release(conn)

        inbound.append(asyncio.create_task(commit_later()))
        return done

    monkeypatch.setattr(plan, "plan", meanwhile)
    data = b"Name,Email,Phone\nAnn,a@x.com,+14155550101\nBob,b@x.com,+14155550102\n"
    job = await run_import(runtime, org, owner, data, dedupe=mode)
    await asyncio.gather(*inbound)
    assert job["status"] == "completed"
    assert (job["report"]["created"], job["report"][outcome], job["report"]["rejected"]) == (
        1,
        1,
        0,
    )
    contacts = {c["phone"]: (c["name"], c["email"]) for c in await contacts_of(db, org)}
    assert contacts == {
        "+14155550101": ("Ann", "a@x.com"),
        "+14155550102": ("Bob", "b@x.com") if mode == "overwrite" else ("From WhatsApp", None),
    }


async def test_a_fresh_file_spread_over_batches_is_whole(
    runtime: Runtime, db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "CHUNK_ROWS", 3)
    org, owner = await org_and_owner(db)
    await make_contact(db, org, email="p4@x.com", name="Old")  # one matched, hashed to a batch
    data = ("Email,Name\n" + "".join(f"p{i}@x.com,P{i}\n" for i in range(40))).encode()
    job = await run_import(runtime, org, owner, data, dedupe="overwrite", tags=["Fair"])
    assert (job["report"]["created"], job["report"]["updated"]) == (39, 1)
    assert [c["name"] for c in await contacts_of(db, org)] == sorted(
        (f"P{i}" for i in range(40)), key=lambda n: f"p{n[1:]}@x.com"
    )
    assert (
        await db.fetchval("select count(*) from contact_tags where organization_id = $1", org) == 40
    )
    assert not await db.fetchval(
        "select count(*) from private.import_plan where job_id = $1", job["id"]
    )


async def test_only_the_import_skips_the_custom_field_check_it_made_itself(
    runtime: Runtime, db: Connection
) -> None:
    org, owner = await org_and_owner(db)
    await define_field(db, org, "contact", "site", "url")
    insert = (
        "insert into contacts (organization_id, name, custom_fields)"
        """ values ($1, 'X', '{"site": "not a url"}')"""
    )
    skip = "select set_config('app.custom_fields_cleaned', 'on', true)"
    async with runtime.db.user_tx(user(owner)) as conn:  # a user's write: always checked
        await conn.execute(skip)
        with pytest.raises(asyncpg.PostgresError) as refused:
            await conn.execute(insert, org)
    assert refused.value.sqlstate == "CG422"
    async with runtime.db.service_tx() as conn:  # the service, without the setting
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute(insert, org)
    data = b"Email,Site\na@x.com,https://a.example\nb@x.com,not a url\nc@x.com,https://a.example\n"
    job = await run_import(runtime, org, owner, data)
    assert (job["report"]["created"], job["report"]["rejected"]) == (2, 1)
    assert {c["email"]: c["custom_fields"] for c in await contacts_of(db, org)} == {
        "a@x.com": {"site": "https://a.example"},
        "c@x.com": {"site": "https://a.example"},
    }


async def test_a_job_an_earlier_runner_began_by_chunks_resumes_from_its_line(
    runtime: Runtime, db: Connection
) -> None:
    org, owner = await org_and_owner(db)
    data = ("Email\n" + "".join(f"p{i}@x.com\n" for i in range(4))).encode()
    job = await stage(runtime, org, owner, data)
    # what the chunk-by-chunk runner had merged and checkpointed (lines 2-3) before it died
    for i in range(2):
        await make_contact(db, org, email=f"p{i}@x.com")
    await db.execute(
        "update import_jobs set status = 'running', updated_at = now() - interval '1 hour',"
        """ progress = '{"created": 2, "next_line": 4, "processed": 2, "total": 4}'"""
        " where id = $1",
        job["id"],
    )
    assert await runner.run_job(runtime, job["id"])
    done = await db.fetchrow("select status, report from import_jobs where id = $1", job["id"])
    assert done["status"] == "completed"
    assert (done["report"]["created"], done["report"]["skipped"]) == (4, 0)
    assert done["report"]["processed"] == 4
    assert [c["email"] for c in await contacts_of(db, org)] == [f"p{i}@x.com" for i in range(4)]
