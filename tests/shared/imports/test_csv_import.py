"""CSV imports end to end over the real database: read, map, dedupe, merge, report.

One module world (its own database); each test makes its own organization, so
the tests share nothing but the schema."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from shared.db import Connection
from shared.errors import Forbidden, Unprocessable
from shared.imports import jobs, runner, upload
from shared.imports.csvfile import NotCsv
from shared.imports.preview import dry_run
from shared.imports.spec import OUTCOMES
from shared.imports.upload import CsvImportOptions
from shared.runtime import Runtime
from tests.shared.imports.csv_support import (
    contacts_of,
    org_and_owner,
    rejected_report,
    run_import,
    stage,
)
from tests.support import make_contact, member, module_runtime_fixtures
from tests.support import principal as user
from tests.support_crm import define_field, make_company

runtime, db = module_runtime_fixtures()
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("csv_import")]


PEOPLE = (
    "Name,E-mail,Phone number\n"
    "Ada,ADA@Example.com ,+44 20 7946 0958\n"
    "Bob,bob@example.com,(415) 555-0123\n"
)


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
    org, owner = await org_and_owner(db)
    text = (
        f"Name{delimiter}E-mail{delimiter}Phone\n"
        f'"Zoë, ""the"" Müller"{delimiter}zoe@example.com{delimiter}+14155550100\n'
        f'"Two\nlines"{delimiter}two@example.com{delimiter}\n'
    ).replace("\n", "\r\n")
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    job = await run_import(runtime, org, owner, data)
    assert job["status"] == "completed", job
    assert job["options"]["delimiter"] == delimiter
    assert job["report"]["created"] == 2 and job["report"]["rejected"] == 0
    assert [(c["name"], c["email"], c["phone"]) for c in await contacts_of(db, org)] == [
        ("Two\r\nlines", "two@example.com", None),
        ('Zoë, "the" Müller', "zoe@example.com", "+14155550100"),
    ]


async def test_phones_and_emails_are_normalized(runtime: Runtime, db: Connection) -> None:
    org, owner = await org_and_owner(db)
    data = (PEOPLE + "Cy,not-an-email,12\n").encode()
    job = await run_import(runtime, org, owner, data, default_region="US")
    assert job["report"] | {} == job["report"]
    assert [(c["email"], c["phone"]) for c in await contacts_of(db, org)] == [
        ("ada@example.com", "+442079460958"),
        ("bob@example.com", "+14155550123"),
    ]
    report = await rejected_report(db, job)
    assert report.splitlines()[0] == "line,Name,E-mail,Phone number,error"
    assert report.splitlines()[1].startswith("4,Cy,not-an-email,12,email:")
    assert "phone:" in report.splitlines()[1]


FILE = (
    b"Name,Email,Phone\n"
    b"Ann,a@x.com,+14155550102\n"  # matches the existing contact by e-mail
    b"New,n@x.com,\n"
    b"New Two,N@x.com,+14155550199\n"  # a duplicate of line 3 within the file
)
EXPECTED = {
    "skip": (
        {"created": 1, "skipped": 2},
        [(None, "a@x.com", "+14155550101"), ("New", "n@x.com", None)],
    ),
    "update_empty": (
        {"created": 1, "updated": 1, "merged": 1},
        [("Ann", "a@x.com", "+14155550101"), ("New", "n@x.com", "+14155550199")],
    ),
    "overwrite": (
        {"created": 1, "updated": 1, "merged": 1},
        [("Ann", "a@x.com", "+14155550102"), ("New Two", "n@x.com", "+14155550199")],
    ),
}


@pytest.mark.parametrize("mode", list(EXPECTED))
# one batch; then a batch per line, written by two connections at once: the same result
@pytest.mark.parametrize("chunk", [100, 1])
async def test_dedupe_modes_within_the_file_and_against_existing(
    runtime: Runtime, db: Connection, monkeypatch: pytest.MonkeyPatch, mode: str, chunk: int
) -> None:
    monkeypatch.setattr(runner, "CHUNK_ROWS", chunk)
    org, owner = await org_and_owner(db)
    await make_contact(db, org, name=None, email="a@x.com", phone="+14155550101")
    counts, contacts = EXPECTED[mode]
    job = await run_import(runtime, org, owner, FILE, dedupe=mode)
    assert job["status"] == "completed"
    assert {k: v for k, v in job["report"].items() if v and k in OUTCOMES} == counts
    assert [(c["name"], c["email"], c["phone"]) for c in await contacts_of(db, org)] == contacts


async def test_another_organizations_contacts_are_never_matched_or_touched(
    runtime: Runtime, db: Connection
) -> None:
    org, owner = await org_and_owner(db)
    other, _ = await org_and_owner(db)
    theirs = await make_contact(db, other, name="Theirs", email="a@x.com", phone="+14155550101")
    job = await run_import(runtime, org, owner, FILE, dedupe="overwrite")
    assert job["report"]["created"] == 2
    assert [(c["name"], c["email"]) for c in await contacts_of(db, org)] == [
        ("Ann", "a@x.com"),
        ("New Two", "n@x.com"),
    ]
    row = await db.fetchrow("select name, email, phone from contacts where id = $1", theirs)
    assert dict(row) == {"name": "Theirs", "email": "a@x.com", "phone": "+14155550101"}


async def test_custom_fields_bad_values_are_row_errors(runtime: Runtime, db: Connection) -> None:
    org, owner = await org_and_owner(db)
    await define_field(db, org, "contact", "plan", "select", options=["free", "pro"])
    await define_field(db, org, "contact", "seats", "number")
    await define_field(db, org, "contact", "site", "url")
    data = (
        b"Email,Plan,Seats,Site\n"
        b'ok@x.com,pro,"1,5",https://ok.example\n'
        b"gold@x.com,gold,2,\n"  # refused here: not an option
        b"url@x.com,free,3,not a url\n"  # refused by the database (app.clean_custom_fields)
        b"seats@x.com,free,many,\n"
        b"fine@x.com,,,\n"
    )
    job = await run_import(runtime, org, owner, data)
    assert job["status"] == "completed"
    assert (job["report"]["created"], job["report"]["rejected"]) == (2, 3)
    contacts = {c["email"]: c["custom_fields"] for c in await contacts_of(db, org)}
    assert contacts == {
        "ok@x.com": {"plan": "pro", "seats": 1.5, "site": "https://ok.example"},
        "fine@x.com": {},
    }
    lines = list(csv.reader(io.StringIO(await rejected_report(db, job))))
    assert lines == [
        ["line", "Email", "Plan", "Seats", "Site", "error"],
        ["3", "gold@x.com", "gold", "2", "", 'custom_fields.plan: must be one of ["free", "pro"]'],
        [
            "4",
            "url@x.com",
            "free",
            "3",
            "not a url",
            "custom_fields.site: must be an http or https URL",
        ],
        ["5", "seats@x.com", "free", "many", "", "custom_fields.seats: must be a number"],
    ]


async def test_companies_are_linked_by_domain_or_name_and_created_when_missing(
    runtime: Runtime, db: Connection
) -> None:
    org, owner = await org_and_owner(db)
    acme = await make_company(db, org, name="Acme Inc", domain="acme.com")
    data = (
        b"Email,Company,Website\n"
        b"a@acme.com,ACME,https://www.acme.com/about\n"  # by domain: the existing one
        b"b@globex.com,Globex,\n"  # by name: created
        b"c@globex.com,globex,\n"  # the same, once
    )
    job = await run_import(runtime, org, owner, data)
    assert job["report"]["created"] == 3
    companies = {
        r["name"]: r["id"]
        for r in await db.fetch("select id, name from companies where organization_id = $1", org)
    }
    assert set(companies) == {"Acme Inc", "Globex"}
    linked = {c["email"]: c["company_id"] for c in await contacts_of(db, org)}
    assert linked == {
        "a@acme.com": acme,
        "b@globex.com": companies["Globex"],
        "c@globex.com": companies["Globex"],
    }


async def test_tags_go_to_every_imported_contact(runtime: Runtime, db: Connection) -> None:
    org, owner = await org_and_owner(db)
    await make_contact(db, org, email="a@x.com")
    job = await run_import(runtime, org, owner, FILE, dedupe="update_empty", tags=["Fair 2026"])
    tagged = await db.fetch(
        "select c.email from contact_tags l join contacts c on c.id = l.contact_id"
        " join tags t on t.id = l.tag_id where l.organization_id = $1 and t.name = 'Fair 2026'"
        " order by c.email",
        org,
    )
    assert job["report"]["updated"] == 1
    assert [r["email"] for r in tagged] == ["a@x.com", "n@x.com"]
    # what the import wrote is marked as its, so automation rules leave it alone
    causes = await db.fetch(
        "select distinct e.causation from outbox_events e join contacts c on c.id = e.aggregate_id"
        " where e.organization_id = $1 and c.email = 'n@x.com'",
        org,
    )
    assert [r["causation"] for r in causes] == [{"import": str(job["id"])}]


async def test_each_created_contact_has_its_event_as_stored(
    runtime: Runtime, db: Connection
) -> None:
    # the contacts of a chunk are inserted by one statement, their events by one more
    org, owner = await org_and_owner(db)
    await define_field(db, org, "contact", "city", "text")
    data = b"Name,E-mail,City\nAda,ada@x.com,Berlin\nBob,bob@x.com,\nCyd,cyd@x.com,Rome\n"
    job = await run_import(runtime, org, owner, data)
    assert job["report"]["created"] == 3
    events = await db.fetch(
        "select e.payload, e.causation, to_jsonb(c) as stored from outbox_events e"
        " join contacts c on c.id = e.aggregate_id"
        " where e.organization_id = $1 and e.event_type = 'contact.created' order by e.id",
        org,
    )
    assert [e["payload"] for e in events] == [e["stored"] for e in events]
    assert [e["payload"]["custom_fields"] for e in events] == [
        {"city": "Berlin"},
        {},
        {"city": "Rome"},
    ]
    assert [e["causation"] for e in events] == [{"import": str(job["id"])}] * 3


async def test_a_dry_run_previews_and_stores_nothing(runtime: Runtime, db: Connection) -> None:
    org, owner = await org_and_owner(db)
    await make_contact(db, org, name=None, email="a@x.com", phone="+14155550101")
    preview = await dry_run(
        db=runtime.db,
        user_id=owner,
        organization_id=org,
        file=io.BytesIO(FILE + b"Bad,bad-email,\n"),
        options=CsvImportOptions(dedupe="update_empty", tags=["new tag"], preview=4),
    )
    assert preview["mapping"] == {"Name": "name", "Email": "email", "Phone": "phone"}
    assert [(r["line"], r["outcome"]) for r in preview["rows"]] == [
        (2, "updated"),
        (3, "created"),
        (4, "merged"),
        (5, "rejected"),
    ]
    assert preview["rows"][0]["record"]["name"] == "Ann"
    assert preview["rows"][1]["record"]["phone"] == "+14155550199"
    assert preview["rows"][3]["error"].startswith("email:")
    assert preview["counts"]["rejected"] == 1
    assert [(c["name"], c["email"]) for c in await contacts_of(db, org)] == [(None, "a@x.com")]
    assert not await db.fetchval("select count(*) from tags where organization_id = $1", org)
    assert not await db.fetchval("select count(*) from import_jobs where organization_id = $1", org)
    assert not await db.fetchval(
        "select count(*) from private.import_rows where organization_id = $1", org
    )


async def test_refused_uploads_store_nothing(runtime: Runtime, db: Connection) -> None:
    org, owner = await org_and_owner(db)
    agent = await member(db, org, "agent")
    with pytest.raises(Forbidden):
        await run_import(runtime, org, agent, FILE)
    with pytest.raises(Forbidden):
        await upload.require_admin(db=runtime.db, principal=user(agent), organization_id=org)
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"
    for not_csv in (png, b"", b"\n\n", b"a,a\n1,2\n"):
        with pytest.raises(NotCsv):
            await run_import(runtime, org, owner, not_csv)
    with pytest.raises(Unprocessable) as refused:
        await run_import(runtime, org, owner, FILE, mapping={"Phone": "fax", "Nope": "email"})
    assert "mapping.Phone: there is no field 'fax'" in refused.value.message
    assert "mapping.Nope: is not a column of the file" in refused.value.message
    assert not await db.fetchval("select count(*) from import_jobs where organization_id = $1", org)
    assert not await db.fetchval(
        "select count(*) from private.import_rows where organization_id = $1", org
    )
    assert await contacts_of(db, org) == []


async def test_a_cancel_stops_before_the_next_chunk(
    runtime: Runtime, db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "CHUNK_ROWS", 2)
    monkeypatch.setattr(runner, "WORKERS", 1)  # batches in line order, one at a time
    report = jobs.report_progress

    async def cancel_meanwhile(*, conn: Connection, **kwargs: Any) -> bool:
        await conn.execute(
            "update import_jobs set cancel_requested = true where id = $1", kwargs["job_id"]
        )
        return await report(conn=conn, **kwargs)

    monkeypatch.setattr(jobs, "report_progress", cancel_meanwhile)
    org, owner = await org_and_owner(db)
    data = "Email\n" + "".join(f"p{i}@x.com\n" for i in range(6))
    job = await run_import(runtime, org, owner, data.encode())
    assert job["status"] == "cancelled"
    assert job["report"]["created"] == 2 and job["report"]["processed"] == 2
    assert [c["email"] for c in await contacts_of(db, org)] == ["p0@x.com", "p1@x.com"]
    assert not await db.fetchval(
        "select count(*) from private.import_rows where job_id = $1", job["id"]
    )


class Died(BaseException):
    """The runner's process dies (a BaseException, as KeyboardInterrupt: no handler
    fails the job), here without stopping the test's event loop."""


async def test_a_crashed_runner_is_resumed_from_its_checkpoint(
    runtime: Runtime, db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "CHUNK_ROWS", 2)
    monkeypatch.setattr(runner, "WORKERS", 1)  # batches in line order, one at a time
    report = jobs.report_progress
    calls = 0

    async def crash_on_second(**kwargs: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Died  # nothing of this batch commits
        return await report(**kwargs)

    monkeypatch.setattr(jobs, "report_progress", crash_on_second)
    org, owner = await org_and_owner(db)
    data = "Email\n" + "".join(f"p{i}@x.com\n" for i in range(5)) + "p0@x.com\n"
    with pytest.raises(BaseExceptionGroup) as died:  # out of the writers' task group
        await run_import(runtime, org, owner, data.encode())
    assert died.value.subgroup(Died) is not None
    job = await db.fetchrow(
        "select id, status, progress from import_jobs where organization_id = $1", org
    )
    assert job["status"] == "running" and job["progress"]["created"] == 2
    assert await runner.run_pending(runtime, seconds=5) == {
        "completed": 0,
        "cancelled": 0,
        "failed": 0,
    }
    await db.execute(
        "update import_jobs set updated_at = now() - interval '1 hour' where id = $1", job["id"]
    )
    monkeypatch.setattr(jobs, "report_progress", report)
    assert await runner.run_pending(runtime, seconds=5) == {
        "completed": 1,
        "cancelled": 0,
        "failed": 0,
    }
    done = await db.fetchrow("select status, report from import_jobs where id = $1", job["id"])
    assert done["status"] == "completed"
    assert (done["report"]["created"], done["report"]["skipped"]) == (5, 1)
    assert len(await contacts_of(db, org)) == 5


async def test_companies_import_matches_on_domain_then_name(
    runtime: Runtime, db: Connection
) -> None:
    org, owner = await org_and_owner(db)
    await define_field(db, org, "company", "industries", "multiselect", options=["saas", "retail"])
    await define_field(db, org, "company", "public", "boolean")
    acme = await make_company(db, org, name="Acme", domain="acme.com")
    initech = await make_company(db, org, name="Initech")
    data = (
        b"Company,Website,Industries,Public\n"
        b"Acme Corp,http://www.ACME.com,retail|saas,yes\n"  # by domain
        b"INITECH,initech.example,saas,no\n"  # by name (no company has the domain)
        b"Hooli,hooli.example,,maybe\n"  # not a boolean
        b",nameless.example,,\n"  # a company needs a name
    )
    job = await run_import(runtime, org, owner, data, entity="companies", dedupe="overwrite")
    assert job["status"] == "completed"
    assert (job["report"]["updated"], job["report"]["rejected"]) == (2, 2)
    rows = await db.fetch(
        "select id, name, domain, custom_fields from companies where organization_id = $1"
        " order by name",
        org,
    )
    assert [dict(r) for r in rows] == [
        {
            "id": acme,
            "name": "Acme Corp",
            "domain": "acme.com",
            "custom_fields": {"industries": ["saas", "retail"], "public": True},
        },
        {
            "id": initech,
            "name": "INITECH",
            "domain": "initech.example",
            "custom_fields": {"industries": ["saas"], "public": False},
        },
    ]
    with pytest.raises(Unprocessable):
        await run_import(runtime, org, owner, data, entity="companies", tags=["x"])


async def test_a_job_whose_staged_rows_were_lost_fails_with_the_reason(
    runtime: Runtime, db: Connection
) -> None:
    org, owner = await org_and_owner(db)
    job = await stage(runtime, org, owner, FILE)
    # what a database crash does to the unlogged staging table
    await db.execute("delete from private.import_rows where job_id = $1", job["id"])
    assert await runner.run_job(runtime, job["id"])
    row = await db.fetchrow("select status, error from import_jobs where id = $1", job["id"])
    assert row["status"] == "failed" and row["error"]["code"] == "staged_rows_lost"
    assert await contacts_of(db, org) == []
