"""The scheduled functions, declared once for both worlds.

`connectgain dev`/`serve` runs them locally (shared/tooling/scheduler.py); on a
hosted project `connectgain schedule install` installs the same list with
pg_cron + pg_net (shared/tooling/schedule_sql.py). Each is a function that takes
POST / with the service key and answers a JSON summary of what it did.
"""

from __future__ import annotations

from dataclasses import dataclass

# pg_cron job names carry this prefix, so an install can drop the jobs it once
# made and no longer declares, and leave every other job alone.
JOB_PREFIX = "connectgain-"


@dataclass(frozen=True)
class ScheduledJob:
    slug: str  # the function, /functions/v1/<slug>
    cron: str  # five fields, minute first, in UTC (pg_cron's and croniter's syntax)
    description: str

    @property
    def job_name(self) -> str:
        return f"{JOB_PREFIX}{self.slug}"


SCHEDULE: tuple[ScheduledJob, ...] = (
    ScheduledJob(
        slug="automation-sweep",
        cron="* * * * *",
        description="Emit task.overdue for open tasks past their due time, once per due time",
    ),
    ScheduledJob(
        slug="bot-sweep",
        cron="* * * * *",
        description="Resume bot sessions whose delay ran out; time out idle ones",
    ),
    ScheduledJob(
        slug="campaign-dispatch",
        cron="* * * * *",
        description="Start due campaigns and send their next recipients, within each rate cap",
    ),
    ScheduledJob(
        slug="events-retention",
        cron="*/10 * * * *",
        description="Delete processed events, finished deliveries and webhook attempts past"
        " their retention, in bounded batches",
    ),
    ScheduledJob(
        slug="events-worker",
        cron="* * * * *",
        description="Deliver domain events to their consumers (outbound webhooks), with retries",
    ),
    ScheduledJob(
        slug="import-runner",
        cron="* * * * *",
        description="Run CSV import jobs nobody runs: waiting ones, and those of a dead runner",
    ),
    ScheduledJob(
        slug="inbound-retry",
        cron="* * * * *",
        description="Process again, with backoff, inbound events that failed or were left",
    ),
    ScheduledJob(
        slug="kommo-import",
        cron="* * * * *",
        description="Run waiting Kommo imports, resuming interrupted ones from their checkpoints",
    ),
    ScheduledJob(
        slug="outbound-sweep",
        cron="* * * * *",
        description="Finish outbound messages a killed server left queued or sending",
    ),
    ScheduledJob(
        slug="sla-sweep",
        cron="* * * * *",
        description="Mark SLA clocks past their due time breached, emitting sla.breached once",
    ),
)
