"""The imports function and /v1/imports over HTTP: upload, background run, report, refusals."""

from __future__ import annotations

import csv
import io
import json

import httpx

from functions import imports as imports_function
from shared.db import Connection
from shared.runtime import Runtime
from shared.settings import Settings
from shared.web import function_app
from tests.shared.billing.kit import put_on_plan
from tests.support import auth, issue_key, make_org, make_user, member

URL = "/functions/v1/imports"
FILE = b"Full Name;E-mail;Mobile\nAda;ada@example.com;+442079460958\nBad;nope;\n"


async def test_an_admin_uploads_the_job_runs_and_the_rejected_rows_download(
    client: httpx.AsyncClient, settings: Settings, db: Connection
) -> None:
    owner = await make_user(db)
    org = await make_org(db, owner)
    headers = auth(settings, owner)
    answer = await client.post(
        f"{URL}/csv",
        params={"organization_id": str(org)},
        files={"file": ("people.csv", FILE, "text/csv")},
        data={"options": json.dumps({"tags": ["fair"]})},
        headers=headers,
    )
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["status"] == "pending" and job["options"]["rows"] == 2
    assert job["options"]["mapping"] == {"Full Name": "name", "E-mail": "email", "Mobile": "phone"}
    # the upload's background task ran the job
    done = (await client.get(f"{URL}/{job['id']}", headers=headers)).json()
    assert done["status"] == "completed"
    assert (done["report"]["created"], done["report"]["rejected"]) == (1, 1)
    progress = await db.fetch(
        "select payload from realtime.messages where topic = $1 and event = 'import.progress'",
        f"org:{org}:inbox",
    )
    assert progress[-1]["payload"]["status"] == "completed"
    listed = await client.get(URL + "/", params={"organization_id": str(org)}, headers=headers)
    assert [j["id"] for j in listed.json()] == [job["id"]]

    report = await client.get(f"{URL}/{job['id']}/rejected.csv", headers=headers)
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(report.text)))
    assert rows[0] == ["line", "Full Name", "E-mail", "Mobile", "error"]
    assert rows[1][:4] == ["3", "Bad", "nope", ""] and rows[1][4].startswith("email:")
    # a finished job cannot be cancelled
    assert (await client.post(f"{URL}/{job['id']}/cancel", headers=headers)).status_code == 409


async def test_refusals_store_nothing(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings, db: Connection
) -> None:
    owner = await make_user(db)
    org = await make_org(db, owner)
    agent = await member(db, org, "agent")
    key, _ = await issue_key(runtime, org, owner, ["read", "write"])
    params = {"organization_id": str(org)}
    raw = {"Content-Type": "text/csv"}

    refused = await client.post(
        f"{URL}/csv", params=params, content=FILE, headers=raw | auth(settings, agent)
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_only"
    by_key = await client.post(
        "/functions/v1/api/v1/imports/csv",
        params=params,
        content=FILE,
        headers=raw | {"Authorization": f"Bearer {key}"},
    )
    assert by_key.status_code == 403

    admin = raw | auth(settings, owner)
    not_csv = await client.post(
        f"{URL}/csv", params=params, content=b"\x89PNG\r\n\x1a\n\x00\x00", headers=admin
    )
    assert not_csv.status_code == 422 and not_csv.json()["error"]["code"] == "not_csv"
    unknown = await client.post(
        f"{URL}/csv",
        params=params | {"options": json.dumps({"mapping": {"Mobile": "fax"}})},
        content=FILE,
        headers=admin,
    )
    assert unknown.status_code == 422 and "fax" in unknown.json()["error"]["message"]
    bad_options = await client.post(
        f"{URL}/csv",
        params=params | {"options": json.dumps({"dedupe": "sometimes", "preview": 0})},
        content=FILE,
        headers=admin,
    )
    assert bad_options.status_code == 422
    assert {d["field"] for d in bad_options.json()["error"]["details"]} == {
        "options.dedupe",
        "options.preview",
    }
    assert (
        await client.post(
            f"{URL}/csv", params=params | {"options": "{"}, content=FILE, headers=admin
        )
    ).status_code == 422
    as_json = await client.post(
        f"{URL}/csv", params=params, json={"a": 1}, headers=auth(settings, owner)
    )
    assert as_json.status_code == 400

    # the same upload through the public API, with the admin's token: a dry run
    preview = await client.post(
        "/functions/v1/api/v1/imports/csv",
        params=params | {"options": json.dumps({"dry_run": True})},
        content=FILE,
        headers=admin,
    )
    assert preview.status_code == 200, preview.text
    assert [r["outcome"] for r in preview.json()["rows"]] == ["created", "rejected"]

    # a plan without imports refuses the upload before reading it
    await put_on_plan(db, org, features=("api",))
    unpaid = await client.post(f"{URL}/csv", params=params, content=FILE, headers=admin)
    assert unpaid.status_code == 402, unpaid.text
    assert unpaid.json()["error"]["details"]["feature"] == "imports"

    assert not await db.fetchval("select count(*) from import_jobs where organization_id = $1", org)
    assert not await db.fetchval("select count(*) from contacts where organization_id = $1", org)


async def test_a_file_over_the_limit_is_refused_as_it_streams(
    runtime: Runtime, settings: Settings, db: Connection
) -> None:
    owner = await make_user(db)
    org = await make_org(db, owner)
    app = function_app(
        imports_function.router, name="imports", runtime=runtime, streamed_bodies={"/csv": 100}
    )

    async def body() -> object:  # no Content-Length: only counting stops it
        for _ in range(10):
            yield FILE

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.post(
            "/csv",
            params={"organization_id": str(org)},
            content=body(),
            headers={"Content-Type": "text/csv"} | auth(settings, owner),
        )
    assert answer.status_code == 413
    assert not await db.fetchval("select count(*) from import_jobs where organization_id = $1", org)
