"""A whole Kommo import against the local fake: interrupted mid-run by an outage
(after a 429 it waited out), resumed from its checkpoints by the next cron run,
then re-run to update rather than duplicate. The module's world (an organization
whose owner and admin are Kommo users, one Kommo user who is not a member) and
the first import are built once; the tests that start more jobs come last."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
import respx

from shared.automation.consumer import AutomationConsumer
from shared.channels import http as provider_http
from shared.db import Connection
from shared.events.base import Event
from shared.imports import jobs
from shared.imports.kommo import run_kommo_import, runner, setup
from shared.imports.kommo.client import TokenBucket
from shared.runtime import Runtime
from tests.shared.imports.kommo.fake import (
    FakeClock,
    FakeKommo,
    blocked,
    throttled,
    unavailable,
)
from tests.shared.imports.kommo.kit import connect, new_job, run_job
from tests.support import make_org, make_user, member, module_runtime_fixtures, principal

runtime, db = module_runtime_fixtures()
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("kommo_run")]


@dataclass
class Imported:
    org: UUID
    owner: UUID
    admin: UUID
    job: UUID
    kommo: FakeKommo
    first: dict[str, Any]  # the first cron run's summary (interrupted)
    second: dict[str, Any]
    resumed: list[tuple[str, int]]  # what the second run asked Kommo for
    waits: list[float]  # the provider client's backoff
    clock: FakeClock


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def imported(runtime: Runtime, db: Connection) -> AsyncIterator[Imported]:
    owner = await make_user(db, "owner@example.com")
    org = await make_org(db, owner)
    admin = await member(db, org, "admin", "admin@example.com")
    clock = FakeClock()
    kommo = FakeKommo(clock=clock)
    await connect(db, org, kommo)
    job = await new_job(db, org, owner)
    # an inbox contact the import must take over (same e-mail), not duplicate
    await db.execute(
        "insert into contacts (organization_id, name, email) values ($1, 'From WhatsApp',"
        " 'john.smith@globex.example')",
        org,
    )
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:  # the backoff moves the same clock
        waits.append(seconds)
        clock.now += seconds

    kommo.failures[("companies", 1)] = [blocked()]  # Kommo's 403 after repeated overruns
    kommo.failures[("contacts", 1)] = [throttled(2)]
    kommo.failures[("leads", 1)] = [unavailable() for _ in range(3)]  # every attempt
    with pytest.MonkeyPatch.context() as patch, respx.mock:
        patch.setattr(provider_http, "sleep", no_sleep)
        kommo.install()

        def bucket() -> TokenBucket:
            return TokenBucket(clock=clock, sleep=clock.sleep)

        first = await runner.run(runtime, seconds=50, bucket=bucket())
        done_before = len(kommo.requests)
        clock.now += 60  # the next cron run
        second = await runner.run(runtime, seconds=50, bucket=bucket())
        resumed = kommo.paths()[done_before:]
        yield Imported(org, owner, admin, job, kommo, first, second, resumed, waits, clock)


async def _job(db: Connection, job: UUID) -> dict[str, Any]:
    return dict(await db.fetchrow("select * from import_jobs where id = $1", job))


async def test_an_outage_mid_run_leaves_the_job_running_and_the_next_run_resumes(
    imported: Imported, db: Connection
) -> None:
    assert imported.first == {
        "claimed": 1,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
        "running": 1,
    }
    assert imported.second["completed"] == 1, imported.second
    # the 403 and the 503s were retried with backoff, the 429 after the wait Kommo asked
    assert imported.waits == [0.5, 2, 0.5, 1]
    # the resumed run read the setup again, then only what was not committed yet
    assert ("companies", 1) not in imported.resumed
    assert ("contacts", 1) not in imported.resumed and ("contacts", 2) not in imported.resumed
    assert ("leads", 1) in imported.resumed and ("leads", 2) in imported.resumed  # 204: the end
    assert imported.resumed[0] == ("account", 1)
    job = await _job(db, imported.job)
    assert job["status"] == "completed"
    checkpoints = await db.fetch(
        "select entity, next_page, done from kommo_import_checkpoints where job_id = $1"
        " order by entity",
        imported.job,
    )
    assert {r["entity"]: (r["next_page"], r["done"]) for r in checkpoints} == {
        "companies": (2, True),
        "contacts": (3, True),
        "leads": (3, True),
        "lead_notes": (2, True),
        "contact_notes": (2, True),
        "company_notes": (2, True),
        "tasks": (2, True),
    }
    # progress was broadcast as the pages went
    events = await db.fetchval(
        "select count(*) from realtime.messages where topic = $1 and event = 'import.progress'",
        f"org:{imported.org}:inbox",
    )
    assert events >= 8


async def test_requests_stay_within_seven_a_second(imported: Imported) -> None:
    stamps = [r["at"] for r in imported.kommo.requests]
    assert len(stamps) > 20 and stamps == sorted(stamps)
    # retries included: no second (by the limiter's clock) holds more than seven
    busiest = max(sum(1 for t in stamps if start <= t < start + 1 - 1e-9) for start in stamps)
    assert busiest == 7


async def test_pipelines_stages_users_and_fields(imported: Imported, db: Connection) -> None:
    org = imported.org
    stages = await db.fetch(
        "select p.name as pipeline, s.name, s.kind::text from stages s join pipelines p"
        " on p.id = s.pipeline_id where s.organization_id = $1 and p.name <> 'Sales'"
        " or (p.organization_id = $1 and p.name = 'Sales' and p.is_default = false)"
        " order by p.position, s.position",
        org,
    )
    by_pipeline: dict[str, list[tuple[str, str]]] = {}
    for s in stages:
        by_pipeline.setdefault(s["pipeline"], []).append((s["name"], s["kind"]))
    assert by_pipeline["Partners"] == [
        ("New partner", "open"),
        ("Signed", "won"),
        ("Declined", "lost"),
    ]
    assert by_pipeline["Sales"][-2:] == [("Closed - won", "won"), ("Closed - lost", "lost")]
    job = await _job(db, imported.job)
    report = job["report"]
    assert report["unmatched_users"] == [
        {"id": 3467999, "name": "Gone Person", "email": "former.employee@example.com"}
    ]
    as_text = {(f["entity"], f["type"]) for f in report["unmappable_fields"]}
    assert as_text == {
        ("leads", t)
        for t in ("legal_entity", "smart_address", "file", "chained_list", "tracking_data")
    } | {("contacts", "category"), ("contacts", "linked_entity")}
    assert job["progress"]["users"] == {"matched": 2, "unmatched": 1}
    types: dict[str, str] = dict(
        await db.fetch(
            "select key, type::text from custom_field_definitions where organization_id = $1",
            org,
        )
    )
    assert types["kommo_501002"] == "number" and types["kommo_501003"] == "boolean"
    assert types["kommo_501005"] == "multiselect" and types["kommo_501013"] == "datetime"
    assert types["kommo_501011"] == "date" and types["kommo_601004"] == "number"


async def test_contacts_and_companies(imported: Imported, db: Connection) -> None:
    org = imported.org
    contacts = {
        r["name"]: dict(r)
        for r in await db.fetch(
            "select c.name, c.email, c.phone, c.custom_fields, c.assignee_id, co.name as company,"
            " array(select t.name from contact_tags ct join tags t on t.id = ct.tag_id"
            "       where ct.contact_id = c.id) as tags"
            " from contacts c left join companies co on co.id = c.company_id"
            " where c.organization_id = $1",
            org,
        )
    }
    assert len(contacts) == 3  # the inbox's John was taken over, not duplicated
    john = contacts["John Smith"]
    assert john["email"] == "john.smith@globex.example"
    assert john["phone"] == "+14155550123"
    assert john["custom_fields"]["kommo_601001"] == "+1 (415) 555-0123 (WORK); 415-555-0199 (MOB)"
    assert john["custom_fields"]["kommo_601003"] == "CTO"
    assert john["company"] == "Globex Ltd" and john["tags"] == ["vip"]
    assert john["assignee_id"] == imported.owner
    maria = contacts["Maria García"]
    assert maria["phone"] is None and maria["assignee_id"] == imported.admin
    assert maria["custom_fields"]["kommo_601004"] == 1500.5
    assert maria["custom_fields"]["kommo_601006"] == "catalog_id: 5001, element_id: 42"
    walk_in = contacts[None]
    assert walk_in["email"] == "walkin@example.com" and walk_in["assignee_id"] is None
    globex = await db.fetchrow(
        "select domain, phone, custom_fields from companies where organization_id = $1"
        " and name = 'Globex Ltd'",
        org,
    )
    assert globex["domain"] == "globex.example" and globex["phone"] == "+14155550100"
    assert globex["custom_fields"]["kommo_701003"] == "https://www.globex.example/about"


async def test_leads_become_deals(imported: Imported, db: Connection) -> None:
    deals = {
        r["title"]: dict(r)
        for r in await db.fetch(
            "select d.title, d.value, d.currency, d.status::text, d.lost_reason, d.won_at,"
            " d.lost_at, d.custom_fields, d.contact_name, d.company_name, s.name as stage,"
            " array(select t.name from deal_tags dt join tags t on t.id = dt.tag_id"
            "       where dt.deal_id = d.id order by t.name) as tags"
            " from deals d join stages s on s.id = d.stage_id where d.organization_id = $1",
            imported.org,
        )
    }
    rollout = deals["Globex rollout"]
    assert rollout["status"] == "open" and rollout["stage"] == "Negotiation"
    assert rollout["value"] == 12000 and rollout["currency"] == "USD"
    assert rollout["contact_name"] == "John Smith" and rollout["company_name"] == "Globex Ltd"
    assert rollout["tags"] == ["enterprise", "vip"]
    assert rollout["custom_fields"] == {
        "kommo_501001": "Trade show",
        "kommo_501002": 25,
        "kommo_501003": True,
        "kommo_501004": "Pro",
        "kommo_501005": ["CRM", "Bots"],
        "kommo_501006": "2025-01-01",
        "kommo_501007": "https://globex.example/landing",
        "kommo_501008": "SSO\nAudit log",
        "kommo_501009": "High",
        "kommo_501010": "5 Elm St",
        "kommo_501011": "1980-01-01",
        "kommo_501012": "name: Globex Ltd, vat_id: US123",
        "kommo_501013": "2025-01-01T10:00:00.000Z",
        "kommo_501014": "1 Main St, Springfield",
        "kommo_501015": "file_uuid: 6a1c6d8e-3a2f-4b9e-8c1d-2f3e4a5b6c7d, version_uuid:"
        " 1b2c3d4e-5f60-4718-9a0b-1c2d3e4f5a6b, file_name: contract.pdf, file_size: 20480,"
        " is_deleted: False",
        "kommo_501016": 15000.5,
        "kommo_501017": "catalog_id: 5001, catalog_element_id: 77",
        "kommo_501018": "newsletter",
    }
    renewal = deals["Initech renewal"]
    assert renewal["status"] == "won" and renewal["won_at"].timestamp() == 1650000000
    pilot = deals["Umbrella pilot"]
    assert pilot["status"] == "lost" and pilot["stage"] == "Declined"
    assert pilot["lost_reason"] == "Insufficient budget"
    assert pilot["lost_at"].timestamp() == 1660000000


async def test_notes_tasks_and_what_was_skipped(imported: Imported, db: Connection) -> None:
    notes = [
        r["body"]
        for r in await db.fetch(
            "select body from notes where organization_id = $1 order by created_at", imported.org
        )
    ]
    assert "Asked for an SSO demo" in notes
    assert (
        "Incoming call · +14155550123 · 60 s\nAgreed on a pilot\nhttps://example.com/call.mp3"
        in notes
    )
    assert "Mailer: Campaign opened" in notes and "Attachment: brochure.pdf" in notes
    assert "SMS to +14155550123: Your invoice is ready" in notes
    assert len(notes) == 8
    tasks = {
        r["title"]: dict(r)
        for r in await db.fetch(
            "select title, description, status::text, due_at, deal_id is not null as on_deal,"
            " contact_id is not null as on_contact, assignee_id from tasks"
            " where organization_id = $1",
            imported.org,
        )
    }
    assert tasks["Call back about pricing"]["on_deal"]
    meeting = tasks["Kick-off meeting"]
    assert meeting["status"] == "done" and meeting["on_contact"]
    assert meeting["description"] == "Kommo task type: Meeting\nResult: Went well; pilot agreed"
    assert tasks["Product demo"]["description"].startswith("Kommo task type: Demo")
    assert tasks["Follow-up"]["due_at"].timestamp() == 1735988400  # no text: its type
    skipped = (await _job(db, imported.job))["report"]["skipped"]
    reasons = {(e, i["id"]): i["reason"] for e, s in skipped.items() for i in s["items"]}
    assert reasons[("lead_notes", 4001004)] == "its lead 5009999 was not imported"
    assert reasons[("lead_notes", 4001006)] == "note type 'key_action_completed' is not imported"
    assert reasons[("contact_notes", 4002003)] == "the note is empty"
    assert reasons[("contacts", 7001002)] == "no valid phone number among not a phone"


async def test_a_re_run_updates_what_changed_and_duplicates_nothing(
    imported: Imported, runtime: Runtime, db: Connection
) -> None:
    counts = "select (select count(*) from contacts where organization_id = $1),"
    counts += " (select count(*) from deals where organization_id = $1),"
    counts += " (select count(*) from notes where organization_id = $1)"
    before = tuple(await db.fetchrow(counts, imported.org))
    kommo = imported.kommo
    # Maria was renamed in Kommo after the first import
    maria = kommo.items("contacts", "contacts")[1]
    maria["name"], maria["updated_at"] = "Maria García-López", 4102444800
    job = await new_job(db, imported.org, imported.owner)
    kommo.requests.clear()
    with respx.mock:
        kommo.install()
        summary = await runner.run(
            runtime,
            seconds=50,
            bucket=TokenBucket(clock=imported.clock, sleep=imported.clock.sleep),
        )
    assert summary["completed"] == 1
    assert tuple(await db.fetchrow(counts, imported.org)) == before
    assert (
        await db.fetchval(
            "select count(*) from contacts where organization_id = $1 and name = $2",
            imported.org,
            "Maria García-López",
        )
        == 1
    )
    # only what changed since the first import was asked for, and only it came back
    listed = [r for r in kommo.requests if r["path"] == "contacts"]
    assert listed and all(r["since"] for r in listed)
    progress = (await _job(db, job))["progress"]
    assert progress["contacts"] == {"created": 0, "updated": 1, "skipped": 1}  # her phone
    assert "leads" not in progress or progress["leads"]["created"] == 0


class Killed(BaseException):
    """The server dying mid-run: nothing in the importer catches it."""


async def test_a_runner_killed_mid_run_leaves_its_job_to_the_next_once_the_lease_ends(
    imported: Imported, runtime: Runtime, db: Connection
) -> None:
    counts = "select (select count(*) from contacts where organization_id = $1),"
    counts += " (select count(*) from deals where organization_id = $1)"
    before = tuple(await db.fetchrow(counts, imported.org))
    job = await new_job(db, imported.org, imported.owner, full=True)
    kommo = imported.kommo

    def bucket() -> TokenBucket:
        return TokenBucket(clock=imported.clock, sleep=imported.clock.sleep)

    with respx.mock:
        route = kommo.install()
        original = route.side_effect

        def answer(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/contacts") and request.url.params.get("page") == "2":
                raise Killed
            return kommo.answer(request)

        route.side_effect = answer
        with pytest.raises(Killed):
            await runner.run(runtime, seconds=50, bucket=bucket())
        # its lease still holds: nobody else takes the job meanwhile
        assert await runner.run(runtime, seconds=50, bucket=bucket()) == {
            "claimed": 0,
            "completed": 0,
            "failed": 0,
            "cancelled": 0,
            "running": 0,
        }
        page = await db.fetchval(
            "select next_page from kommo_import_checkpoints where job_id = $1"
            " and entity = 'contacts'",
            job,
        )
        assert page == 2  # page 1 was committed before the death
        await db.execute(
            "update private.kommo_import_leases set lease_until = now() - interval '1 second'"
            " where job_id = $1",
            job,
        )
        route.side_effect = original
        kommo.requests.clear()
        summary = await runner.run(runtime, seconds=50, bucket=bucket())
    assert summary["completed"] == 1
    assert ("contacts", 1) not in kommo.paths() and ("contacts", 2) in kommo.paths()
    assert tuple(await db.fetchrow(counts, imported.org)) == before
    assert (await _job(db, job))["status"] == "completed"


async def test_a_cancel_asked_for_mid_run_stops_it_at_the_next_page(
    imported: Imported, runtime: Runtime, db: Connection
) -> None:
    job = await new_job(db, imported.org, imported.owner, full=True)
    assert await jobs.start(conn=db, job_id=job)
    async with runtime.db.user_tx(principal(imported.admin)) as conn:
        await jobs.request_cancel(conn=conn, job_id=job)
    with respx.mock:
        imported.kommo.install()
        status = await run_kommo_import(
            runtime=runtime,
            job_id=job,
            bucket=TokenBucket(clock=imported.clock, sleep=imported.clock.sleep),
        )
    assert status == "cancelled"
    assert (await _job(db, job))["status"] == "cancelled"
    assert (
        await db.fetchval("select count(*) from kommo_import_checkpoints where job_id = $1", job)
        == 0
    )


async def test_imported_rows_carry_the_import_and_wake_no_automation_rule(
    imported: Imported, db: Connection
) -> None:
    await db.execute(
        "insert into automation_rules (organization_id, name, position, trigger, actions)"
        """ values ($1, 'Greet', 0, 'contact.created', '[{"type": "stop"}]')""",
        imported.org,
    )
    rows = await db.fetch(
        "select e.id, e.organization_id, e.event_type as type, e.aggregate_id, e.payload,"
        " e.created_at, e.causation, c.email"
        " from outbox_events e join contacts c on c.id = e.aggregate_id"
        " where e.organization_id = $1 and e.event_type = 'contact.created' order by e.id",
        imported.org,
    )
    inbox = [r["id"] for r in rows if r["email"] == "john.smith@globex.example"]
    by_import = [r["id"] for r in rows if r["causation"] == {"import": str(imported.job)}]
    assert len(inbox) == 1 and len(by_import) >= 2
    assert sorted(inbox + by_import) == [r["id"] for r in rows]
    events = [Event(**{k: v for k, v in r.items() if k != "email"}) for r in rows]
    fanned = await AutomationConsumer().fan_out(conn=db, events=events)
    assert [event for event, _ in fanned] == inbox  # the contact that wrote in, alone


@dataclass
class Account:
    """An organization of its own with a job waiting, and its Kommo account."""

    org: UUID
    owner: UUID
    job: UUID
    kommo: FakeKommo

    async def run(self, runtime: Runtime) -> str:
        with respx.mock:
            self.kommo.install()
            return await run_job(runtime, self.job)


async def account(db: Connection, subdomain: str, *, connected: bool = True) -> Account:
    owner = await make_user(db)
    org = await make_org(db, owner)
    kommo = FakeKommo(subdomain=subdomain, clock=FakeClock())
    if connected:
        await connect(db, org, kommo)
    return Account(org, owner, await new_job(db, org, owner), kommo)


async def test_a_token_revoked_mid_run_fails_the_job_with_the_reason(
    runtime: Runtime, db: Connection
) -> None:
    a = await account(db, "revoked")
    a.kommo.token = "rotated-in-kommo"  # the stored token no longer opens the account
    assert await a.run(runtime) == "failed"
    row = await _job(db, a.job)
    assert row["status"] == "failed"
    assert (row["error"]["code"], row["error"]["status"]) == ("kommo_unauthorized", 401)
    assert a.kommo.paths() == [("account", 1)]  # nothing after the refusal
    # a finished job is not run again
    assert await a.run(runtime) == "failed"
    assert len(a.kommo.requests) == 1


async def test_a_job_of_an_organization_not_connected_fails_before_any_request(
    runtime: Runtime, db: Connection
) -> None:
    a = await account(db, "nobody", connected=False)
    assert await a.run(runtime) == "failed"
    assert (await _job(db, a.job))["error"]["code"] == "kommo_not_connected"
    assert a.kommo.requests == []


async def test_a_cancel_asked_for_between_pages_keeps_what_the_pages_before_wrote(
    runtime: Runtime, db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await account(db, "cancelled")
    report = jobs.report_progress

    async def cancel_after_companies(*, conn: Connection, **kwargs: Any) -> bool:
        if ("companies", 1) in a.kommo.paths():  # asked while the first page was written
            await conn.execute(
                "update import_jobs set cancel_requested = true where id = $1", a.job
            )
        return await report(conn=conn, **kwargs)

    monkeypatch.setattr(jobs, "report_progress", cancel_after_companies)
    assert await a.run(runtime) == "cancelled"
    assert (await _job(db, a.job))["status"] == "cancelled"
    assert ("contacts", 1) not in a.kommo.paths()
    assert await db.fetchval("select count(*) from companies where organization_id = $1", a.org)
    assert not await db.fetchval("select count(*) from contacts where organization_id = $1", a.org)


async def test_a_bug_fails_the_job_rather_than_leaving_it_running(
    runtime: Runtime, db: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await account(db, "buggy")

    async def broken(*args: Any) -> dict[str, Any]:
        raise KeyError("a bug in the setup")

    monkeypatch.setattr(setup, "apply", broken)
    assert await a.run(runtime) == "failed"
    assert (await _job(db, a.job))["error"] == {"code": "internal_error", "message": "KeyError"}
    csv_job = await jobs.create_job(
        conn=db,
        organization_id=a.org,
        source="csv",
        entity="contacts",
        options={},
        created_by=a.owner,
    )
    with pytest.raises(ValueError, match="not a Kommo import job"):
        await run_kommo_import(runtime=runtime, job_id=csv_job["id"])
