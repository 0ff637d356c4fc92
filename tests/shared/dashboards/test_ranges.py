"""Date range presets, custom ranges and their limits, the previous period, the buckets a
window touches, and which zones the hourly rollups serve exactly. No database."""

from __future__ import annotations

from datetime import date

import pytest

from shared.dashboards.ranges import Window, resolve, whole_hour_offsets
from shared.dashboards.widgets import buckets
from shared.errors import Unprocessable

TODAY = date(2026, 3, 4)  # a Wednesday


@pytest.mark.parametrize(
    ("preset", "start", "end"),
    [
        ("today", date(2026, 3, 4), date(2026, 3, 4)),
        ("last_7_days", date(2026, 2, 26), date(2026, 3, 4)),
        ("this_week", date(2026, 3, 2), date(2026, 3, 4)),
        ("last_week", date(2026, 2, 23), date(2026, 3, 1)),
        ("last_month", date(2026, 2, 1), date(2026, 2, 28)),
        ("this_quarter", date(2026, 1, 1), date(2026, 3, 4)),
        ("last_12_months", date(2025, 4, 1), date(2026, 3, 4)),
        ("next_12_months", date(2026, 3, 1), date(2027, 2, 28)),
    ],
)
def test_presets_are_local_days(preset: str, start: date, end: date):
    assert resolve({"preset": preset}, today=TODAY, grain="day") == Window(start, end)


@pytest.mark.parametrize(
    ("raw", "grain", "field"),
    [
        ({"from": "2024-01-01", "to": "2026-01-02"}, "day", "date_range"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "day", "date_range.to"),
        ({"from": "2026-02-30", "to": "2026-03-01"}, "day", "date_range.from"),
        ({"preset": "someday"}, "day", "date_range.preset"),
        ({"preset": "today", "from": "2026-01-01"}, "day", "date_range"),
        ({"from": "2026-01-01"}, "day", "date_range"),
        ({"from": "1900-01-01", "to": "1900-01-02"}, "month", "date_range"),
        ("last week", "day", "date_range"),
    ],
)
def test_bad_ranges_name_the_problem(raw: object, grain: str, field: str):
    with pytest.raises(Unprocessable) as refused:
        resolve(raw, today=TODAY, grain=grain)
    assert refused.value.details[0]["field"] == field


def test_two_years_at_week_grain_and_the_previous_period():
    window = resolve({"from": "2024-01-01", "to": "2026-01-02"}, today=TODAY, grain="week")
    assert window.days == 733
    assert Window(date(2026, 3, 1), date(2026, 3, 7)).previous() == Window(
        date(2026, 2, 22), date(2026, 2, 28)
    )


def test_buckets_cover_the_window_from_its_week_or_month():
    window = Window(date(2026, 1, 28), date(2026, 3, 2))
    assert buckets(window, "month") == [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
    weeks = buckets(window, "week")
    assert (weeks[0], weeks[-1], len(weeks)) == (date(2026, 1, 26), date(2026, 3, 2), 6)
    assert len(buckets(window, "day")) == window.days


def test_hourly_rollups_serve_whole_hour_zones_only():
    window = Window(date(2026, 1, 1), date(2026, 12, 31))
    assert whole_hour_offsets("America/New_York", window)
    assert whole_hour_offsets("UTC", window)
    assert not whole_hour_offsets("Asia/Kolkata", window)
    # Lord Howe: +11 in its summer, +10:30 the rest of the year
    lord_howe = "Australia/Lord_Howe"
    assert whole_hour_offsets(lord_howe, Window(date(2026, 1, 5), date(2026, 1, 31)))
    assert not whole_hour_offsets(lord_howe, Window(date(2026, 6, 1), date(2026, 6, 30)))
    assert not whole_hour_offsets(lord_howe, window)
