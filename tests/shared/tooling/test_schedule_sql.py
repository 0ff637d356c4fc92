"""`connectgain schedule sql|install` against a real PostgreSQL with pg_cron (Debian's
postgresql-15-cron). pg_net and Vault exist only on Supabase: minimal stand-ins with
their documented signatures let the SQL install, and record what a job would POST."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from shared.schedule import SCHEDULE, ScheduledJob
from shared.tooling import cli
from shared.tooling.cluster import Cluster, free_port
from shared.tooling.schedule_sql import (
    ScheduleError,
    Secrets,
    install_schedule,
    job_command,
    schedule_sql,
)

STAND_INS = """
create schema vault;
create table vault.secrets (
  id uuid primary key default gen_random_uuid(), name text unique, description text,
  secret text not null);
create view vault.decrypted_secrets as
  select id, name, description, secret, secret as decrypted_secret from vault.secrets;
create function vault.create_secret(new_secret text, new_name text default null,
  new_description text default '', new_key_id uuid default null) returns uuid
  language sql as $$
  insert into vault.secrets (name, description, secret)
  values (new_name, new_description, new_secret) returning id $$;
create function vault.update_secret(secret_id uuid, new_secret text default null,
  new_name text default null, new_description text default null,
  new_key_id uuid default null) returns void
  language sql as $$
  update vault.secrets set secret = coalesce(new_secret, secret),
    name = coalesce(new_name, name), description = coalesce(new_description, description)
  where id = secret_id $$;
create schema net;
create table net.requests (id bigserial primary key, url text, headers jsonb, body jsonb,
  timeout_milliseconds int);
create function net.http_post(url text, body jsonb default '{}'::jsonb,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  timeout_milliseconds int default 5000) returns bigint
  language sql as $$
  insert into net.requests (url, headers, body, timeout_milliseconds)
  values (url, headers, body, timeout_milliseconds) returning id $$;
"""
FUNCTIONS = "https://functions.example.com"


@pytest.fixture(scope="module")
def cron_cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="cg-pg-cron-"))
    os.chmod(root, 0o755)  # the server may run as an unprivileged user
    cluster = Cluster(
        data_dir=root / "db",
        port=free_port(),
        durable=False,
        options=("shared_preload_libraries=pg_cron", "cron.database_name=postgres"),
    )
    cluster.start()
    try:
        asyncio.run(_execute(cluster.url(), STAND_INS))
        yield cluster
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def test_the_sql_installs_the_declared_jobs_and_reinstalling_updates_them(
    cron_cluster: Cluster,
):
    url = cron_cluster.url()
    sql = schedule_sql(secrets=Secrets(FUNCTIONS + "/", "first-key"))
    installed = await install_schedule(url, sql)  # creates pg_cron too
    assert installed == sorted((job.job_name, job.cron) for job in SCHEDULE)

    # again, with another key: updated in place, nothing doubled; a job no longer
    # declared goes, another's stays
    await _execute(
        url,
        "select cron.schedule('connectgain-gone', '0 * * * *', 'select 1');"
        "select cron.schedule('someone-else', '0 * * * *', 'select 2');",
    )
    await install_schedule(url, schedule_sql(secrets=Secrets(FUNCTIONS, "second-key")))
    jobs = await _fetch(url, "select jobname, schedule, command from cron.job order by jobname")
    declared = {job.job_name: job for job in SCHEDULE}
    assert [r["jobname"] for r in jobs] == [*sorted(declared), "someone-else"]
    for row in jobs[:-1]:
        job = declared[row["jobname"]]
        assert (row["schedule"], row["command"]) == (job.cron, job_command(job))
        assert "second-key" not in row["command"], "secrets stay in Vault"
    secrets = await _fetch(url, "select name, secret from vault.secrets order by name")
    assert [tuple(r) for r in secrets] == [
        ("connectgain_functions_url", FUNCTIONS),
        ("connectgain_service_key", "second-key"),
    ]

    # what pg_cron runs: a POST to the function with the service key from Vault
    for row in jobs[:-1]:
        await _execute(url, row["command"])
    posted = await _fetch(url, "select url, headers, body from net.requests order by id")
    assert [r["url"] for r in posted] == [f"{FUNCTIONS}/functions/v1/{j.slug}" for j in SCHEDULE]
    assert all('"Authorization": "Bearer second-key"' in r["headers"] for r in posted)


async def test_without_secrets_vault_is_left_alone(cron_cluster: Cluster):
    url = cron_cluster.url()
    before = await _fetch(url, "select name, secret from vault.secrets order by name")
    job = ScheduledJob("outbound-sweep", "*/5 * * * *", "every five minutes")
    await install_schedule(url, schedule_sql(secrets=None, jobs=[job]))
    assert await _fetch(url, "select name, secret from vault.secrets order by name") == before
    rows = await _fetch(
        url, "select jobname, schedule from cron.job where jobname like 'connectgain-%'"
    )
    assert [tuple(r) for r in rows] == [("connectgain-outbound-sweep", "*/5 * * * *")]


def test_a_value_that_could_break_out_of_the_sql_is_refused():
    with pytest.raises(ScheduleError, match=r"'\$'"):
        schedule_sql(secrets=Secrets(FUNCTIONS, "key$cg$; drop table x; --"))
    assert "'it''s'" in schedule_sql(secrets=Secrets(FUNCTIONS, "it's"))


def test_the_command_prints_the_sql_and_installs_it(
    cron_cluster: Cluster, capsys: pytest.CaptureFixture[str]
):
    assert cli.main(["schedule", "sql", "--functions-url", FUNCTIONS]) == 0
    printed = capsys.readouterr().out
    assert "select cron.schedule('connectgain-inbound-retry', '* * * * *'," in printed
    assert cli.main(["schedule", "install"]) == 1
    assert "--db-url" in capsys.readouterr().err
    assert cli.main(["schedule", "install", "--db-url", cron_cluster.url()]) == 0
    out = capsys.readouterr().out
    assert "scheduled connectgain-inbound-retry: * * * * *" in out
