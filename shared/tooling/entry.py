"""What `connectgain serve` (and so the container image) serves: one function or all.

CONNECTGAIN_FUNCTION (or `--function`) names one function's slug, or `all`. One
function is served at the same URL as behind the gateway, `/functions/v1/<slug>`,
beside `health` (the container's health check), with the same CORS, so a reverse
proxy can send `/functions/v1/<slug>` to its own container and webhook
signatures, which cover the public URL, check out either way.

The local scheduler runs only where it cannot run twice by accident:
CONNECTGAIN_SCHEDULE=auto (the default) runs it when serving all functions (the
dev server), never in a container of one function; `on` runs the served
scheduled functions; `off` (the image's default: hosted projects use pg_cron,
`connectgain schedule install`) and `--no-schedule` turn it off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.schedule import SCHEDULE, ScheduledJob
from shared.settings import Settings

if TYPE_CHECKING:  # the CLI imports this module for every command; the apps only to serve
    from shared.runtime import Runtime
    from shared.tooling.gateway import Gateway

ALL = "all"
HEALTH = "health"


class ServeError(Exception):
    """The function to serve does not exist."""


@dataclass(frozen=True)
class Plan:
    slugs: tuple[str, ...] | None  # None: every function
    schedule: tuple[ScheduledJob, ...]


def plan(settings: Settings, *, function: str | None = None, no_schedule: bool = False) -> Plan:
    """The functions and scheduled jobs to serve; `function` overrides the setting."""
    from shared.tooling.gateway import function_modules

    chosen = (function or settings.function).strip().lower()
    known = sorted(function_modules())
    if chosen == ALL:
        slugs = None
    elif chosen in known:
        slugs = tuple(sorted({chosen, HEALTH}))
    else:
        raise ServeError(
            f"No function {chosen!r} (CONNECTGAIN_FUNCTION / --function);"
            f" choose {ALL!r} or one of: {', '.join(known)}"
        )
    scheduled = settings.schedule == "on" or (settings.schedule == "auto" and slugs is None)
    if no_schedule or not scheduled:
        return Plan(slugs, ())
    return Plan(slugs, tuple(job for job in SCHEDULE if slugs is None or job.slug in slugs))


def build(
    settings: Settings,
    *,
    function: str | None = None,
    no_schedule: bool = False,
    runtime: Runtime | None = None,
) -> Gateway:
    """The ASGI app `connectgain serve` runs."""
    from shared.tooling.gateway import Gateway

    chosen = plan(settings, function=function, no_schedule=no_schedule)
    return Gateway(settings, runtime=runtime, schedule=chosen.schedule, only=chosen.slugs)
