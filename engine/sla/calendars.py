"""Business calendars: when the support desk is open, in a time zone, holidays excepted.

A calendar is weekly opening hours (local wall-clock times per weekday) plus holiday
dates. It is placed in a time zone with :meth:`Calendar.in_zone` (the customer's, unless
the calendar pins its own), and the arithmetic runs on local days converted to UTC one day
at a time, so a daylight-saving change moves the UTC instants, never the local hours.
The 24x7 calendar is open at every instant; its "day" still ends at local midnight.

Calendars file (YAML, ``ENGINE_SLA_CALENDARS_FILE``)::

    calendars:
      - name: business-mx
        timezone: America/Mexico_City      # optional: pins the zone for every customer
        hours: {mon: "09:00-18:00", tue: "09:00-18:00", sat: "10:00-14:00"}
        holidays: [2026-12-25, 2027-01-01]
    plans: {business_hours: business-mx}   # optional: the calendar of each plan
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.contract import SupportPlan, TimeZoneName
from engine.errors import EngineError, describe_validation

DEFAULT_ZONE = "America/Mexico_City"
BUSINESS = "business"
ALWAYS = "24x7"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# How far ahead the arithmetic looks for an open day before declaring a calendar closed.
SEARCH_DAYS = 3 * 366


class CalendarError(EngineError):
    pass


@dataclass(frozen=True)
class Calendar:
    """Weekly opening hours (``hours[0]`` is Monday) and holidays; ``always`` is 24x7."""

    name: str
    hours: tuple[tuple[time, time] | None, ...] = ((time(0), time(0)),) * 7
    holidays: frozenset[date] = frozenset()
    timezone: str | None = None
    always: bool = False

    def in_zone(self, zone: str) -> ZonedCalendar:
        key = self.timezone or zone
        try:
            return ZonedCalendar(self, ZoneInfo(key))
        except (ZoneInfoNotFoundError, ValueError):
            raise CalendarError(f"unknown IANA time zone {key!r}") from None

    @property
    def weekly_open(self) -> timedelta:
        if self.always:
            return timedelta(days=7)
        total = timedelta()
        for hours in self.hours:
            if hours is not None:
                total += _span(hours)
        return total

    def describe(self) -> str:
        if self.always:
            return f"{self.name} (24x7)"
        days = [
            f"{name} {start:%H:%M}-{end:%H:%M}"
            for name, hours in zip(WEEKDAYS, self.hours, strict=True)
            if hours is not None
            for start, end in (hours,)
        ]
        holidays = f", {len(self.holidays)} holidays" if self.holidays else ""
        return f"{self.name} ({', '.join(days)}{holidays})"


def _span(hours: tuple[time, time]) -> timedelta:
    start, end = hours
    start_delta = timedelta(hours=start.hour, minutes=start.minute)
    end_delta = timedelta(hours=end.hour, minutes=end.minute) if end != time(0) else timedelta(1)
    return end_delta - start_delta


@dataclass(frozen=True)
class ZonedCalendar:
    """A calendar placed in a time zone: the arithmetic the obligations need."""

    calendar: Calendar
    zone: ZoneInfo

    @property
    def name(self) -> str:
        return self.calendar.name

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone)

    def open_interval(self, day: date) -> tuple[datetime, datetime] | None:
        """The UTC instants the desk opens and closes on this local day, or None (closed)."""
        if self.calendar.always:
            return self._at(day, time(0)), self._at(day + timedelta(days=1), time(0))
        hours = self.calendar.hours[day.weekday()]
        if hours is None or day in self.calendar.holidays:
            return None
        start, end = hours
        closing = (
            self._at(day + timedelta(days=1), time(0)) if end == time(0) else self._at(day, end)
        )
        return self._at(day, start), closing

    def _at(self, day: date, wall: time) -> datetime:
        # fold=0: a wall time that happens twice (autumn) is its first occurrence; one that
        # does not exist (spring) is read with the offset before the change.
        return datetime.combine(day, wall, tzinfo=self.zone).astimezone(UTC)

    def intervals_from(self, instant: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals that end after ``instant``, in order, clipped to start at it."""
        day = self.local(instant).date() - timedelta(days=1)
        for _ in range(SEARCH_DAYS):
            interval = self.open_interval(day)
            day += timedelta(days=1)
            if interval is None or interval[1] <= instant:
                continue
            yield max(interval[0], instant), interval[1]
        raise CalendarError(f"calendar {self.name} has no open hours within {SEARCH_DAYS} days")

    def is_open(self, instant: datetime) -> bool:
        start, _ = next(self.intervals_from(instant))
        return start == instant

    def next_open(self, instant: datetime) -> datetime:
        """``instant`` if the desk is open then, else the next opening."""
        return next(self.intervals_from(instant))[0]

    def add_open_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant when ``duration`` of open time has passed since ``start``."""
        left = duration
        for begin, end in self.intervals_from(start):
            if end - begin >= left:
                return begin + left
            left -= end - begin
        raise AssertionError("intervals_from never ends without raising")

    def end_of_open_day(self, instant: datetime) -> datetime:
        """The close of the open day that ``instant`` falls in, or of the next open day
        when the desk is closed at ``instant``."""
        return next(self.intervals_from(instant))[1]


def business_calendar(name: str = BUSINESS) -> Calendar:
    """DOMAIN.md Entitlements: Monday to Friday 09:00-18:00 (Mexico City unless the
    customer's zone is given)."""
    weekday = (time(9), time(18))
    return Calendar(name, (weekday,) * 5 + (None, None))


def always_calendar(name: str = ALWAYS) -> Calendar:
    return Calendar(name, always=True)


@dataclass(frozen=True)
class Calendars:
    """The known calendars, and which one each plan uses."""

    by_name: Mapping[str, Calendar] = field(
        default_factory=lambda: {BUSINESS: business_calendar(), ALWAYS: always_calendar()}
    )
    plans: Mapping[SupportPlan, str] = field(
        default_factory=lambda: {SupportPlan.BUSINESS_HOURS: BUSINESS, SupportPlan.ALWAYS: ALWAYS}
    )

    def for_plan(self, plan: SupportPlan, override: str | None = None) -> Calendar:
        return self.named(override or self.plans[plan])

    def named(self, name: str) -> Calendar:
        try:
            return self.by_name[name]
        except KeyError:
            known = ", ".join(sorted(self.by_name))
            raise CalendarError(f"unknown calendar {name!r} (known: {known})") from None


DEFAULT_CALENDARS = Calendars()


class _CalendarEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    timezone: TimeZoneName | None = None
    always: bool = False
    hours: dict[str, str] = {}
    holidays: list[date] = []

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: dict[str, str]) -> dict[str, str]:
        for day, span in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"{day!r} is not one of {', '.join(WEEKDAYS)}")
            _parse_span(span)
        return value

    def calendar(self) -> Calendar:
        if self.always:
            return Calendar(self.name, always=True, timezone=self.timezone)
        if not self.hours:
            raise ValueError("a calendar that is not 'always' needs opening 'hours'")
        hours = tuple(
            _parse_span(self.hours[day]) if day in self.hours else None for day in WEEKDAYS
        )
        return Calendar(self.name, hours, frozenset(self.holidays), self.timezone)


def _parse_span(text: str) -> tuple[time, time]:
    try:
        start_text, end_text = text.split("-")
        start, end = time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
    except ValueError:
        raise ValueError(f"{text!r}: expected HH:MM-HH:MM, e.g. 09:00-18:00") from None
    if end != time(0) and end <= start:
        raise ValueError(f"{text!r}: closes before it opens (24:00 is written 00:00)")
    return start, end


class _CalendarsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    calendars: list[_CalendarEntry]
    plans: dict[SupportPlan, str] = {}


def parse_calendars(document: Any, origin: str) -> Calendars:
    try:
        parsed = _CalendarsFile.model_validate(document)
        entries = {entry.name: entry.calendar() for entry in parsed.calendars}
    except ValidationError as error:
        raise CalendarError(f"{origin}: {describe_validation(error)}") from error
    except ValueError as error:
        raise CalendarError(f"{origin}: {error}") from error
    by_name = {**DEFAULT_CALENDARS.by_name, **entries}
    plans = {**DEFAULT_CALENDARS.plans, **parsed.plans}
    for plan, name in plans.items():
        if name not in by_name:
            raise CalendarError(f"{origin}: plans.{plan.value}: unknown calendar {name!r}")
    return Calendars(by_name, plans)


def load_calendars(path: Path | None) -> Calendars:
    if path is None:
        return DEFAULT_CALENDARS
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise CalendarError(f"{path}: cannot read the calendars: {error}") from error
    return parse_calendars(document, str(path))
