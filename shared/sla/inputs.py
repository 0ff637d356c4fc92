"""What callers send for business hours and SLA policies, validated before anything is
saved: a known IANA timezone, intervals as "HH:MM" (end up to "24:00") that do not
overlap within a day, holidays as dates, targets as positive seconds."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from shared.sla.hours import Schedule

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
MAX_TARGET = 366 * 24 * 3600  # a year


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


@functools.cache
def _zones() -> frozenset[str]:
    # the IANA names (it reads the zone files each call: once is enough)
    return frozenset(available_timezones())


def _timezone(value: str) -> str:
    # the list, not ZoneInfo alone, which would also take other files' paths
    if value not in _zones():
        raise ValueError(f"unknown timezone {value!r}; use an IANA name such as Europe/Berlin")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover (listed but unreadable)
        raise ValueError(f"unknown timezone {value!r}") from exc
    return value


_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$|^24:00$")


def _clock(value: str) -> str:
    if not _CLOCK.match(value):
        raise ValueError('must be a time "HH:MM" between 00:00 and 24:00')
    return value


def minutes(clock: str) -> int:
    hours, mins = clock.split(":")
    return int(hours) * 60 + int(mins)


Timezone = Annotated[str, AfterValidator(_timezone)]
Clock = Annotated[str, AfterValidator(_clock)]


class Interval(Strict):
    start: Clock = Field(examples=["09:00"])
    end: Clock = Field(examples=["17:00"], description='"24:00" runs to midnight')

    @model_validator(mode="after")
    def _ordered(self) -> Interval:
        if minutes(self.end) <= minutes(self.start):
            raise ValueError(f"an interval must end after it starts ({self.start}-{self.end})")
        return self


class Holiday(Strict):
    date: dt.date
    recurring: bool = Field(False, description="Every year on this month and day")
    name: str | None = Field(None, max_length=120)


def _weekly(value: dict[Weekday, list[Interval]]) -> dict[Weekday, list[Interval]]:
    for day, intervals in value.items():
        ordered = sorted(intervals, key=lambda i: minutes(i.start))
        for before, after in itertools.pairwise(ordered):
            if minutes(after.start) < minutes(before.end):
                raise ValueError(
                    f"{day}: intervals {before.start}-{before.end} and"
                    f" {after.start}-{after.end} overlap"
                )
        value[day] = ordered
    return value


Weekly = Annotated[
    dict[Weekday, Annotated[list[Interval], Field(max_length=12)]], AfterValidator(_weekly)
]


class BusinessHoursCreate(Strict):
    name: str = Field("Business hours", min_length=1, max_length=120)
    channel_account_id: UUID | None = Field(
        None, description="These hours for one channel account; none: the organization's"
    )
    timezone: Timezone = Field(examples=["Europe/Berlin"])
    weekly: Weekly = Field(
        description="Open intervals per weekday (mon … sun); a day not listed is closed",
        examples=[
            {"mon": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}]}
        ],
    )
    holidays: list[Holiday] = Field(default_factory=list, max_length=400)


class BusinessHoursUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=120)
    timezone: Timezone | None = None
    weekly: Weekly | None = None
    holidays: list[Holiday] | None = Field(None, max_length=400)


def _day(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:  # a row written past the API (the database checks the shape only)
        return None


def schedule_of(row: dict[str, Any]) -> Schedule:
    """A stored business-hours row as the calculator reads it."""
    weekly = {
        WEEKDAYS.index(day): tuple((minutes(i["start"]), minutes(i["end"])) for i in intervals)
        for day, intervals in row["weekly"].items()
    }
    holidays = [(_day(h["date"]), h["recurring"]) for h in row["holidays"]]
    return Schedule(
        timezone=row["timezone"],
        weekly=weekly,
        dates=frozenset(d for d, recurring in holidays if d and not recurring),
        yearly=frozenset((d.month, d.day) for d, recurring in holidays if d and recurring),
    )


Target = Annotated[int, Field(gt=0, le=MAX_TARGET, description="Seconds")]


class PolicyCreate(Strict):
    name: str = Field(min_length=1, max_length=120)
    first_response_seconds: Target | None = None
    next_response_seconds: Target | None = None
    resolution_seconds: Target | None = None
    business_hours_only: bool = Field(
        False,
        description="Count only the conversation's business hours (its channel account's,"
        " else the organization's; none configured: every hour counts)",
    )
    is_default: bool = Field(False, description="Applied to new conversations")
    channel_account_id: UUID | None = Field(
        None, description="With is_default: the default of this channel account only"
    )


class PolicyUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=120)
    first_response_seconds: Target | None = None
    next_response_seconds: Target | None = None
    resolution_seconds: Target | None = None
    business_hours_only: bool | None = None
    is_default: bool | None = None
    channel_account_id: UUID | None = None


class PolicyChoice(Strict):
    policy_id: UUID
