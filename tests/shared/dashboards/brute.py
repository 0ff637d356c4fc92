"""The metrics computed the slow, obvious way in Python from raw rows: local days with
zoneinfo, percentiles interpolated as PostgreSQL's percentile_cont."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

NIL = None


def bounds(tz: str, start: date, end: date) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    return (
        datetime.combine(start, time(), zone),
        datetime.combine(end + timedelta(days=1), time(), zone),
    )


def bucket(ts: datetime, tz: str, grain: str | None) -> date | None:
    if grain is None:
        return None
    d = ts.astimezone(ZoneInfo(tz)).date()
    if grain == "week":
        return d - timedelta(days=d.weekday())
    if grain == "month":
        return d.replace(day=1)
    return d


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = p * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


AGGREGATES: dict[str, Callable[[list[Any]], Any]] = {
    "count": len,
    "sum": lambda v: sum(v),
    "median": lambda v: percentile(v, 0.5),
    "p90": lambda v: percentile(v, 0.9),
    "average": lambda v: statistics.fmean(v),
}


def grouped(
    items: Iterable[tuple[datetime, Any, Any]],
    *,
    tz: str,
    start: date,
    end: date,
    grain: str | None,
    aggregate: str | Callable[[list[Any]], Any],
) -> dict[tuple[date | None, Any], Any]:
    """(ts, key, value) in the window → {(local bucket, key): aggregate of the values}."""
    low, high = bounds(tz, start, end)
    groups: dict[tuple[date | None, Any], list[Any]] = defaultdict(list)
    for ts, key, value in items:
        if low <= ts < high:
            groups[(bucket(ts, tz, grain), key)].append(value)
    fold = AGGREGATES[aggregate] if isinstance(aggregate, str) else aggregate
    return {k: fold(v) for k, v in groups.items()}


def ratio(values: list[tuple[int, int]]) -> float | None:
    part, whole = sum(p for p, _ in values), sum(w for _, w in values)
    return part / whole if whole else None


def as_text(value: Any) -> str | None:
    return None if value is None else str(value)
