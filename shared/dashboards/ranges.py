"""A widget's date range: a preset or custom local dates, in the organization's timezone.

Ranges are whole local days (`from` and `to` inclusive), so a day is the local day
whatever DST does to its length; the SQL turns each bound into an instant with the
zone's rules (`(date)::timestamp at time zone tz`). The previous period, for a KPI's
comparison, is as many days just before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from shared.errors import Unprocessable

Grain = Literal["day", "week", "month"]
GRAINS: tuple[str, ...] = ("day", "week", "month")
MAX_DAYS_AT_DAY_GRAIN = 731  # two years
MAX_DAYS = 3660  # ten years, at week or month grain


def _month_start(d: date, months_back: int = 0) -> date:
    index = d.year * 12 + d.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def _month_end(d: date) -> date:
    return _month_start(d, -1) - timedelta(days=1)


def _quarter_start(d: date) -> date:
    return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


PRESETS: dict[str, Any] = {
    "today": lambda t: (t, t),
    "yesterday": lambda t: (t - timedelta(days=1), t - timedelta(days=1)),
    "last_7_days": lambda t: (t - timedelta(days=6), t),
    "last_30_days": lambda t: (t - timedelta(days=29), t),
    "last_90_days": lambda t: (t - timedelta(days=89), t),
    "last_365_days": lambda t: (t - timedelta(days=364), t),
    "this_week": lambda t: (t - timedelta(days=t.weekday()), t),
    "last_week": lambda t: (
        t - timedelta(days=t.weekday() + 7),
        t - timedelta(days=t.weekday() + 1),
    ),
    "this_month": lambda t: (_month_start(t), t),
    "last_month": lambda t: (_month_start(t, 1), _month_start(t) - timedelta(days=1)),
    "this_quarter": lambda t: (_quarter_start(t), t),
    "this_year": lambda t: (date(t.year, 1, 1), t),
    "last_year": lambda t: (date(t.year - 1, 1, 1), date(t.year - 1, 12, 31)),
    "last_12_months": lambda t: (_month_start(t, 11), t),
    # forward-looking, for forecasts
    "next_30_days": lambda t: (t, t + timedelta(days=29)),
    "next_90_days": lambda t: (t, t + timedelta(days=89)),
    "next_12_months": lambda t: (_month_start(t), _month_end(_month_start(t, -11))),
}


@dataclass(frozen=True)
class Window:
    start: date  # first local day
    end: date  # last local day, inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Window:
        return Window(self.start - timedelta(days=self.days), self.start - timedelta(days=1))


def today_in(timezone: str) -> date:
    return datetime.now(ZoneInfo(timezone)).date()


def _date(raw: Any, field: str) -> date:
    if not isinstance(raw, str):
        raise _bad(field, "a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise _bad(field, "a date as YYYY-MM-DD") from None


def _bad(field: str, message: str) -> Unprocessable:
    return Unprocessable(f"{field}: {message}", details=[{"field": field, "message": message}])


def resolve(raw: Any, *, today: date, grain: str | None) -> Window:
    """The local days of `raw` ({"preset"} or {"from", "to"}); 422 naming the problem."""
    if not isinstance(raw, dict):
        raise _bad("date_range", 'an object: {"preset": …} or {"from": …, "to": …}')
    extra = set(raw) - {"preset", "from", "to"}
    if extra:
        raise _bad(f"date_range.{sorted(extra)[0]}", "unknown key; use preset, or from and to")
    if "preset" in raw:
        if "from" in raw or "to" in raw:
            raise _bad("date_range", "a preset or from and to, not both")
        preset = raw["preset"]
        if preset not in PRESETS:
            raise _bad("date_range.preset", f"unknown preset; known: {', '.join(PRESETS)}")
        start, end = PRESETS[preset](today)
        window = Window(start, end)
    else:
        if "from" not in raw or "to" not in raw:
            raise _bad("date_range", "give a preset, or both from and to")
        window = Window(_date(raw["from"], "date_range.from"), _date(raw["to"], "date_range.to"))
        if window.end < window.start:
            raise _bad("date_range.to", "is before from")
    if grain == "day" and window.days > MAX_DAYS_AT_DAY_GRAIN:
        raise _bad(
            "date_range",
            f"{window.days} days at day grain; at most {MAX_DAYS_AT_DAY_GRAIN} (two years):"
            " group by week or month",
        )
    if window.days > MAX_DAYS:
        raise _bad("date_range", f"{window.days} days; at most {MAX_DAYS}")
    if window.start.year < 1970 or window.end.year > 2200:
        raise _bad("date_range", "dates between 1970 and 2200")
    return window


def whole_hour_offsets(timezone: str, window: Window) -> bool:
    """Whether every UTC offset the zone has over the window (a day on either side) is a
    whole number of hours: then hourly UTC buckets fall inside one local hour each."""
    zone = ZoneInfo(timezone)
    day = window.start - timedelta(days=1)
    while day <= window.end + timedelta(days=1):
        for hour in (0, 12):
            offset = datetime(day.year, day.month, day.day, hour, tzinfo=zone).utcoffset()
            if offset is None or offset.total_seconds() % 3600:
                return False
        day += timedelta(days=1)
    return True
