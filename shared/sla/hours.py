"""Business hours: which instants count, and arithmetic over them.

A schedule is a timezone, up to a few intervals of wall-clock time per weekday
(end "24:00" runs to midnight) and holidays (a date, or a month and day every
year). On each open local date, an interval covers the instants from when the
clock first shows its start to when it last shows its end:

- a wall time inside a spring-forward gap does not exist; it stands for the
  moment of the change (02:30 on a day that skips 02:00-03:00 is 03:00), so the
  interval 01:00-04:00 that day lasts two hours;
- a wall time shown twice (fall-back overlap) starts at its first showing and
  ends at its last, so 00:00-24:00 that day lasts 25 hours.

Both functions are pure and exact to the microsecond (timedelta arithmetic):
`business_time(a, c) == business_time(a, b) + business_time(b, c)` and
`business_time(s, deadline(s, d)) == d`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY = timedelta(days=1)
# How far ahead `deadline` looks for open time before giving up (a schedule closed
# by its holidays for longer than this has no deadline).
HORIZON_DAYS = 3 * 366


@dataclass(frozen=True)
class Schedule:
    timezone: str
    # weekday (0 = Monday) → sorted, non-overlapping (start, end) minutes of the day;
    # end may be 1440 (24:00).
    weekly: dict[int, tuple[tuple[int, int], ...]]
    dates: frozenset[date] = frozenset()  # one-off holidays
    yearly: frozenset[tuple[int, int]] = frozenset()  # (month, day) every year
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", ZoneInfo(self.timezone))

    def closed_on(self, day: date) -> bool:
        return day in self.dates or (day.month, day.day) in self.yearly

    @property
    def always_open(self) -> bool:
        return (
            all(self.weekly.get(d) == ((0, 1440),) for d in range(7))
            and not self.dates
            and not self.yearly
        )


def _instant(zone: ZoneInfo, local: datetime, *, last: bool) -> datetime:
    """The UTC instant of a naive local time: its first (or `last`) showing, or the
    moment of the change when it falls in a gap."""
    early = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    late = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    exists = early.astimezone(zone).replace(tzinfo=None) == local
    if exists:
        return max(early, late) if last else min(early, late)
    # In a gap the two folds straddle the change: find it to the microsecond.
    low, high = min(early, late), max(early, late)
    after = high.astimezone(zone).utcoffset()
    while high - low > timedelta(microseconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return high


def _day_spans(schedule: Schedule, day: date) -> list[tuple[datetime, datetime]]:
    if schedule.closed_on(day):
        return []
    midnight = datetime.combine(day, time())
    spans = []
    for start, end in schedule.weekly.get(day.weekday(), ()):
        begin = _instant(schedule.zone, midnight + timedelta(minutes=start), last=False)
        finish = _instant(schedule.zone, midnight + timedelta(minutes=end), last=True)
        if finish > begin:
            spans.append((begin, finish))
    return sorted(spans)  # a row written past the API may list a day's intervals unordered


def _spans(schedule: Schedule, first: date, last: date) -> Iterator[tuple[datetime, datetime]]:
    """Open spans of local dates first..last, in order, touching ones merged."""
    day = first
    pending: tuple[datetime, datetime] | None = None
    while day <= last:
        for begin, finish in _day_spans(schedule, day):
            if pending is None:
                pending = (begin, finish)
            elif begin <= pending[1]:  # touching (midnight) or overlapping (fall-back)
                pending = (pending[0], max(pending[1], finish))
            else:
                yield pending
                pending = (begin, finish)
        day += DAY
    if pending is not None:
        yield pending


def _local_date(schedule: Schedule, moment: datetime) -> date:
    return moment.astimezone(schedule.zone).date()


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    return moment.astimezone(UTC)


def business_time(schedule: Schedule, start: datetime, end: datetime) -> timedelta:
    """The open time between two instants (zero when end <= start)."""
    start, end = _utc(start), _utc(end)
    if end <= start:
        return timedelta()
    if schedule.always_open:
        return end - start
    total = timedelta()
    # a day's spans may begin before that local date (a gap at midnight) or end
    # after it (24:00 in a fall-back): start a day early
    first, last = _local_date(schedule, start) - DAY, _local_date(schedule, end) + DAY
    for begin, finish in _spans(schedule, first, last):
        if begin >= end:
            break
        if finish > start:
            total += min(finish, end) - max(begin, start)
    return total


def business_seconds(schedule: Schedule, start: datetime, end: datetime) -> int:
    return int(business_time(schedule, start, end).total_seconds())


def deadline(schedule: Schedule, start: datetime, duration: timedelta) -> datetime | None:
    """The first instant by which `duration` of open time has passed since `start`;
    None when the schedule has no such time within the horizon."""
    start = _utc(start)
    if duration <= timedelta():
        return start
    if schedule.always_open:
        return start + duration
    left = duration
    first = _local_date(schedule, start) - DAY
    for begin, finish in _spans(schedule, first, first + timedelta(days=HORIZON_DAYS)):
        if finish <= start:
            continue
        available = finish - max(begin, start)
        if available >= left:
            return max(begin, start) + left
        left -= available
    return None
