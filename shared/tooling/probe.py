"""The image's HEALTHCHECK: `python -m shared.tooling.probe`.

GETs `/functions/v1/health` on this container's port (CONNECTGAIN_API_PORT) and
exits 0 only when it answers 200 with `"status": "ok"` (the app and its database
answer). Standard library only: it runs every 30 seconds, so it imports nothing
of the app.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

DEFAULT_PORT = "54321"


def health_url() -> str:
    port = os.environ.get("CONNECTGAIN_API_PORT", DEFAULT_PORT)
    return f"http://127.0.0.1:{port}/functions/v1/health"


def probe(url: str, *, timeout: float = 3.0) -> tuple[bool, str]:
    """(healthy, what was seen)."""
    try:
        # The URL is ours (plain http to this container), never a caller's.
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            body = json.loads(response.read())
            healthy = response.status == 200 and body.get("status") == "ok"
            return healthy, f"HTTP {response.status} {json.dumps(body)}"
    except urllib.error.HTTPError as exc:  # 503: the database is down
        return False, f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:  # refused, timed out, not JSON
        return False, str(exc)


def main() -> int:
    healthy, seen = probe(health_url())
    print(seen, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
