"""The schedule (shared/schedule.py) as SQL for a hosted Supabase project: pg_cron
runs each job, pg_net POSTs to the function, and the functions' URL and the
service key are read from Supabase Vault inside the job, as Supabase documents for
scheduling functions; no secret is written into cron.job.

Re-running it updates everything in place: the Vault secrets by name,
`cron.schedule` by job name, and jobs this project once declared and no longer
does (names starting with JOB_PREFIX) are unscheduled. Other jobs are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from shared.schedule import JOB_PREFIX, SCHEDULE, ScheduledJob

URL_SECRET = "connectgain_functions_url"
KEY_SECRET = "connectgain_service_key"
# How long pg_net waits for a function's answer (its default is 5 s).
TIMEOUT_MS = 60_000


class ScheduleError(Exception):
    """Input the SQL cannot carry; printed for the person at the keyboard."""


@dataclass(frozen=True)
class Secrets:
    functions_url: str  # where /functions/v1/<slug> is served
    service_key: str


def literal(value: str) -> str:
    """A SQL string literal (standard_conforming_strings, on since PostgreSQL 9.1)."""
    if "$" in value or "\x00" in value:
        raise ScheduleError(f"{value[:20]!r}…: '$' and NUL cannot appear in a schedule value")
    return "'" + value.replace("'", "''") + "'"


def _secret(value: str) -> str:
    return f"(select decrypted_secret from vault.decrypted_secrets where name = {literal(value)})"


def job_command(job: ScheduledJob) -> str:
    """What pg_cron runs: a POST to the function with the service key, both from Vault."""
    return (
        "select net.http_post("
        f"url := {_secret(URL_SECRET)} || {literal('/functions/v1/' + job.slug)}, "
        "headers := jsonb_build_object('Content-Type', 'application/json', "
        f"'Authorization', 'Bearer ' || {_secret(KEY_SECRET)}), "
        "body := '{}'::jsonb, "
        f"timeout_milliseconds := {TIMEOUT_MS}) as request_id"
    )


def _store(name: str, value: str, description: str) -> str:
    return f"""do $cg$
declare
  existing uuid;
begin
  select id into existing from vault.secrets where name = {literal(name)};
  if existing is null then
    perform vault.create_secret({literal(value)}, {literal(name)}, {literal(description)});
  else
    perform vault.update_secret(existing, {literal(value)});
  end if;
end
$cg$;"""


EXTENSIONS = """-- pg_cron runs the jobs, pg_net makes their HTTP calls (schema net),
-- Vault keeps the secrets (on by default in every Supabase project).
create extension if not exists pg_cron;
do $cg$
begin
  if to_regnamespace('net') is null then
    create extension pg_net with schema extensions;
  end if;
  if to_regnamespace('vault') is null then
    raise exception 'Supabase Vault (schema vault) is missing: enable supabase_vault';
  end if;
end
$cg$;"""


def schedule_sql(*, secrets: Secrets | None, jobs: Iterable[ScheduledJob] = SCHEDULE) -> str:
    """The whole script, in one transaction. `secrets=None` leaves Vault as it is
    (secrets kept there by hand under URL_SECRET and KEY_SECRET)."""
    jobs = tuple(jobs)
    parts = [
        "-- ConnectGain's schedule (shared/schedule.py); safe to run again.",
        "begin;",
        EXTENSIONS,
    ]
    if secrets is not None:
        base = secrets.functions_url.rstrip("/")
        parts += [
            _store(URL_SECRET, base, "ConnectGain: the functions' base URL, for pg_cron"),
            _store(KEY_SECRET, secrets.service_key, "ConnectGain: the service key, for pg_cron"),
        ]
    names = ", ".join(literal(job.job_name) for job in jobs) or "null"
    parts.append(
        "-- Jobs once declared here and no longer.\n"
        "select cron.unschedule(jobname) from cron.job"
        f" where jobname like {literal(JOB_PREFIX + '%')} and jobname not in ({names});"
    )
    for job in jobs:
        parts.append(
            f"-- {job.slug}: {job.description}\n"
            f"select cron.schedule({literal(job.job_name)}, {literal(job.cron)},"
            f" $job${job_command(job)}$job$);"
        )
    parts.append("commit;")
    return "\n\n".join(parts) + "\n"


async def install_schedule(db_url: str, sql: str) -> list[tuple[str, str]]:
    """Apply the script; returns the project's jobs afterwards (name, schedule)."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(sql)
        rows = await conn.fetch(
            "select jobname, schedule from cron.job where jobname like $1 order by jobname",
            JOB_PREFIX + "%",
        )
    finally:
        await conn.close()
    return [(r["jobname"], r["schedule"]) for r in rows]
