"""How `connectgain serve` serves the gateway: the HTTP stack, chosen by measurement.

uvicorn with uvloop (the event loop in C over libuv) and httptools (llhttp, the C
HTTP parser), instead of asyncio's loop and the pure-Python h11 it picks when those
are missing. bench/ingest.py's HTTP mode compares the stacks; bench/README.md
gives the figures behind the choice.
"""

from __future__ import annotations

from typing import Any

from shared.settings import get_settings
from shared.tooling import entry
from shared.tooling.gateway import Gateway

# Named, not "auto": with "auto" a missing extension falls back silently to the
# slow stack, and the server would still start.
UVICORN_OPTIONS: dict[str, Any] = {"loop": "uvloop", "http": "httptools"}
FACTORY = f"{__name__}:gateway_from_environment"


def gateway_from_environment() -> Gateway:
    """The gateway on the environment's settings: an app factory for a server's workers
    (`uvicorn --factory`, `granian --factory`), which import it by name."""
    # each worker would run every job: workers never run the schedule
    return entry.build(get_settings(), no_schedule=True)
