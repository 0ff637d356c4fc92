"""The business-hours calculator: properties over random schedules and instants, and
named cases across DST changes (Berlin, New York, Lord Howe's 30 minutes) and holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.sla.hours import Schedule, business_time, deadline

H = timedelta(hours=1)
ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC", "Asia/Kolkata")


def office(tz: str, *, days: range = range(5), start: int = 9 * 60, end: int = 17 * 60, **kw):
    return Schedule(timezone=tz, weekly={d: ((start, end),) for d in days}, **kw)


def local(tz: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz), fold=fold)  # type: ignore[misc]


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    weekly = {}
    for day in range(7):
        cuts = sorted(draw(st.sets(st.integers(0, 48), max_size=6)))
        pairs = [(cuts[i] * 30, cuts[i + 1] * 30) for i in range(0, len(cuts) - 1, 2)]
        weekly[day] = tuple(p for p in pairs if p[1] > p[0])
    holidays = draw(st.sets(st.dates(date(2026, 1, 1), date(2027, 12, 31)), max_size=20))
    yearly = draw(st.sets(st.tuples(st.integers(1, 12), st.integers(1, 28)), max_size=5))
    return Schedule(
        timezone=draw(st.sampled_from(ZONES)),
        weekly=weekly,
        dates=frozenset(holidays),
        yearly=frozenset(yearly),
    )


# whole minutes plus odd seconds, over DST changes of both hemispheres
instants = st.integers(0, 400 * 24 * 3600).map(
    lambda s: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=s, microseconds=s % 7)
)
FEW = settings(max_examples=60, deadline=None)


@FEW
@given(schedules(), instants, st.integers(0, 20 * 24 * 3600), st.integers(0, 20 * 24 * 3600))
def test_time_between_instants_adds_up(schedule: Schedule, a: datetime, ab: int, bc: int):
    b, c = a + timedelta(seconds=ab), a + timedelta(seconds=ab + bc)
    whole = business_time(schedule, a, c)
    assert whole == business_time(schedule, a, b) + business_time(schedule, b, c)
    assert timedelta() <= whole <= c - a


@FEW
@given(schedules(), instants, st.integers(1, 5 * 24 * 3600))
def test_the_deadline_is_the_first_instant_with_that_much_open_time(
    schedule: Schedule, start: datetime, seconds: int
):
    due = deadline(schedule, start, timedelta(seconds=seconds))
    if due is None:  # closed for the whole horizon: only a schedule with no open time at all
        assert all(not spans for spans in schedule.weekly.values())
        return
    assert business_time(schedule, start, due) == timedelta(seconds=seconds)
    # and not a microsecond later than needed
    assert business_time(schedule, start, due - timedelta(microseconds=1)) < timedelta(
        seconds=seconds
    )


@FEW
@given(instants, st.integers(0, 40 * 24 * 3600), st.sampled_from(ZONES))
def test_always_open_is_wall_clock_time(start: datetime, seconds: int, tz: str):
    always = Schedule(timezone=tz, weekly={d: ((0, 1440),) for d in range(7)})
    end = start + timedelta(seconds=seconds)
    assert business_time(always, start, end) == end - start
    assert deadline(always, start, end - start) == end
    # the same hours spelled as intervals that touch at noon: the same answer, the slow way
    split = Schedule(timezone=tz, weekly={d: ((0, 720), (720, 1440)) for d in range(7)})
    assert business_time(split, start, end) == end - start


def day_length(schedule: Schedule, tz: str, day: date) -> timedelta:
    start = local(tz, day.year, day.month, day.day)
    after = day + timedelta(days=1)
    return business_time(schedule, start, local(tz, after.year, after.month, after.day))


def test_berlin_spring_forward_loses_an_hour_and_a_gap_time_means_the_change():
    every_day = office("Europe/Berlin", days=range(7), start=0, end=1440)
    assert day_length(every_day, "Europe/Berlin", date(2026, 3, 29)) == 23 * H
    # 01:00-04:00 on the day the clock jumps from 02:00 to 03:00: two hours
    early = office("Europe/Berlin", days=range(7), start=60, end=240)
    sunday = local("Europe/Berlin", 2026, 3, 29)
    assert business_time(early, sunday, sunday + 24 * H) == 2 * H
    # opening at 02:30 (which does not exist that day) opens at the change, 01:00 UTC
    gap = office("Europe/Berlin", days=range(7), start=150, end=240)
    opens = deadline(gap, sunday, timedelta(seconds=1))
    assert opens == datetime(2026, 3, 29, 1, 0, 1, tzinfo=UTC)


def test_berlin_fall_back_counts_the_repeated_hour():
    every_day = office("Europe/Berlin", days=range(7), start=0, end=1440)
    assert day_length(every_day, "Europe/Berlin", date(2026, 10, 25)) == 25 * H
    # 02:00-03:00 is shown twice: from its first showing to the last, two hours
    repeated = office("Europe/Berlin", days=range(7), start=120, end=180)
    sunday = local("Europe/Berlin", 2026, 10, 25)
    assert business_time(repeated, sunday, sunday + 20 * H) == 2 * H  # wall-clock +20 h
    due = deadline(repeated, sunday, 90 * timedelta(minutes=1))
    # (an ambiguous time never equals another zone's: compare in UTC)
    assert due == local("Europe/Berlin", 2026, 10, 25, 2, 30, fold=1).astimezone(UTC)


def test_new_york_changes():
    every_day = office("America/New_York", days=range(7), start=0, end=1440)
    assert day_length(every_day, "America/New_York", date(2026, 3, 8)) == 23 * H
    assert day_length(every_day, "America/New_York", date(2026, 11, 1)) == 25 * H
    assert day_length(every_day, "America/New_York", date(2026, 11, 2)) == 24 * H
    # a nine-to-five day is eight hours on both change days (the changes are at night)
    nine_to_five = office("America/New_York", days=range(7))
    assert day_length(nine_to_five, "America/New_York", date(2026, 3, 8)) == 8 * H
    assert day_length(nine_to_five, "America/New_York", date(2026, 11, 1)) == 8 * H


def test_lord_howe_shifts_by_half_an_hour():
    tz = "Australia/Lord_Howe"
    every_day = office(tz, days=range(7), start=0, end=1440)
    # DST starts 2026-10-04 at 02:00 → 02:30, ends 2026-04-05 at 02:00 → 01:30
    assert day_length(every_day, tz, date(2026, 10, 4)) == timedelta(hours=23, minutes=30)
    assert day_length(every_day, tz, date(2026, 4, 5)) == timedelta(hours=24, minutes=30)
    night = office(tz, days=range(7), start=60, end=180)  # 01:00-03:00
    assert day_length(night, tz, date(2026, 10, 4)) == timedelta(hours=1, minutes=30)
    assert day_length(night, tz, date(2026, 4, 5)) == timedelta(hours=2, minutes=30)


def test_a_weekend_and_holidays_are_skipped():
    tz = "Europe/Berlin"
    hours = office(tz, dates=frozenset({date(2026, 12, 28)}), yearly=frozenset({(12, 25)}))
    # Thursday 24 Dec 16:00 + 2 h: one hour Thursday, Friday is Christmas (every year),
    # the weekend, Monday the 28th is a one-off holiday: Tuesday 10:00
    due = deadline(hours, local(tz, 2026, 12, 24, 16), 2 * H)
    assert due == local(tz, 2026, 12, 29, 10)
    assert business_time(hours, local(tz, 2026, 12, 24, 16), due) == 2 * H
    # Christmas closes again a year later; the one-off holiday does not
    assert day_length(hours, tz, date(2028, 12, 25)) == 0 * H  # a Monday
    assert day_length(hours, tz, date(2028, 12, 28)) == 8 * H  # a Thursday
