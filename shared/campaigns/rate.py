"""The send rate of a channel account, shared by every campaign dispatcher.

A row per account holds the next free send slot; a dispatcher reserves `count`
slots in one atomic upsert, getting the first slot's time. Reservations of
concurrent dispatchers never overlap, so the account's schedule never exceeds its
cap however many dispatchers run. Slots are spaced for SCHEDULE_SHARE of the cap:
the rest leaves room for sends a little late (a busy event loop) and for the margin
of the window that holds each process's written sends within the cap outright
(shared/campaigns/pace.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from shared.db import Connection

# Messages per second: WhatsApp Cloud API's default throughput (an account may be
# raised up to 1,000 in its settings, `campaign_rate`), Twilio's SMS long-code
# rate, Telegram's broadcast limit; other channels a careful default.
DEFAULT_RATES = {"whatsapp": 80.0, "sms": 1.0, "telegram": 30.0}
MAX_RATES = {"whatsapp": 1000.0, "sms": 1.0, "telegram": 30.0}
FALLBACK_RATE = 10.0
# The share of the cap the slots are spaced for (the rest absorbs sends that run late).
# The pacing window (shared/campaigns/pace.py) lets a place go a second and a little after
# its write: at 98% of the cap it was the limit, every send queued at it (p50 0.25 s) and
# the rate fell to what it let through; at 97% it stays a safety net.
SCHEDULE_SHARE = 0.97


def rate_of(*, channel: str, settings: Mapping[str, Any]) -> float:
    """The account's cap in messages per second (its setting, within the channel's max)."""
    default = DEFAULT_RATES.get(channel, FALLBACK_RATE)
    wanted = settings.get("campaign_rate")
    if isinstance(wanted, int | float) and not isinstance(wanted, bool) and wanted > 0:
        return min(float(wanted), MAX_RATES.get(channel, default))
    return default


async def reserve(
    *, conn: Connection, channel_account_id: UUID, count: int, rate: float, now: datetime
) -> list[datetime]:
    """`count` send times of the account, 1/rate apart, none shared with anyone else."""
    step = timedelta(seconds=1 / (rate * SCHEDULE_SHARE))
    first: datetime = await conn.fetchval(
        "insert into private.campaign_send_slots as s (channel_account_id, next_slot)"
        " values ($1, $2::timestamptz + $3::interval * $4::int)"
        " on conflict (channel_account_id) do update"
        " set next_slot = greatest(s.next_slot, $2::timestamptz) + $3::interval * $4::int"
        " returning next_slot - $3::interval * $4::int",
        channel_account_id,
        now,
        step,
        count,
    )
    return [first + step * i for i in range(count)]


async def next_free(*, conn: Connection, channel_account_id: UUID) -> datetime | None:
    """The account's next free slot (None before its first reservation)."""
    slot: datetime | None = await conn.fetchval(
        "select next_slot from private.campaign_send_slots where channel_account_id = $1",
        channel_account_id,
    )
    return slot
