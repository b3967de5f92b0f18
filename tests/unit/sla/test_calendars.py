"""Business calendars in a zone: opening hours, weekends, holidays, DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.contract import SupportPlan
from engine.sla.calendars import (
    DEFAULT_CALENDARS,
    CalendarError,
    always_calendar,
    business_calendar,
    load_calendars,
    parse_calendars,
)

MEXICO = business_calendar().in_zone("America/Mexico_City")  # UTC-6, no DST since 2022
NEW_YORK = business_calendar().in_zone("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_the_default_business_calendar_is_domain_md_s() -> None:
    calendar = DEFAULT_CALENDARS.for_plan(SupportPlan.BUSINESS_HOURS)
    assert calendar.describe().startswith("business (mon 09:00-18:00")
    assert calendar.weekly_open == timedelta(hours=45)
    assert DEFAULT_CALENDARS.for_plan(SupportPlan.ALWAYS).weekly_open == timedelta(days=7)


def test_open_hours_weekends_and_the_next_opening() -> None:
    assert MEXICO.is_open(utc(2026, 11, 23, 16))  # Mon 10:00 local
    assert not MEXICO.is_open(utc(2026, 11, 23, 2))  # Sun 20:00 local
    friday_evening = utc(2026, 11, 28, 1)  # Fri 19:00 local
    assert MEXICO.next_open(friday_evening) == utc(2026, 11, 30, 15)  # Mon 09:00 local


def test_open_time_is_counted_across_closed_hours() -> None:
    friday_17 = utc(2026, 11, 27, 23)
    assert MEXICO.add_open_time(friday_17, timedelta(hours=2)) == utc(2026, 11, 30, 16)


def test_a_dst_change_moves_the_utc_instants_not_the_local_hours() -> None:
    # New York springs forward on Sunday 2026-03-08.
    assert NEW_YORK.open_interval(utc(2026, 3, 6).date()) == (
        utc(2026, 3, 6, 14),
        utc(2026, 3, 6, 23),
    )
    assert NEW_YORK.open_interval(utc(2026, 3, 9).date()) == (
        utc(2026, 3, 9, 13),
        utc(2026, 3, 9, 22),
    )
    always = always_calendar().in_zone("America/New_York")
    start, end = always.open_interval(utc(2026, 3, 8).date()) or (None, None)
    assert start is not None and end is not None
    assert end - start == timedelta(hours=23)


def test_an_autumn_day_lasts_25_hours_on_24x7() -> None:
    madrid = always_calendar().in_zone("Europe/Madrid")
    saturday_noon = utc(2026, 10, 24, 10)
    assert madrid.end_of_open_day(saturday_noon) == utc(2026, 10, 24, 22)
    assert madrid.end_of_open_day(utc(2026, 10, 24, 22)) == utc(2026, 10, 25, 23)


def test_holidays_are_closed() -> None:
    calendars = parse_calendars(
        {
            "calendars": [
                {
                    "name": "mx-2026",
                    "hours": {day: "09:00-18:00" for day in ("mon", "tue", "wed", "thu", "fri")},
                    "holidays": ["2026-12-25"],
                }
            ],
            "plans": {"business_hours": "mx-2026"},
        },
        "calendars.yaml",
    )
    calendar = calendars.for_plan(SupportPlan.BUSINESS_HOURS).in_zone("America/Mexico_City")
    christmas_morning = utc(2026, 12, 25, 16)
    assert not calendar.is_open(christmas_morning)
    assert calendar.next_open(christmas_morning) == utc(2026, 12, 28, 15)
    assert "1 holidays" in calendar.calendar.describe()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"calendars": [{"name": "x", "hours": {"mon": "18:00-09:00"}}]}, "closes before"),
        ({"calendars": [{"name": "x", "hours": {"lun": "09:00-18:00"}}]}, "'lun' is not one of"),
        ({"calendars": [{"name": "x", "hours": {"mon": "9-18"}}]}, "expected HH:MM-HH:MM"),
        ({"calendars": [{"name": "x", "timezone": "Mars/Olympus", "always": True}]}, "Mars"),
        ({"calendars": [{"name": "x"}]}, "needs opening 'hours'"),
        ({"calendars": [], "plans": {"24x7": "nope"}}, "plans.24x7: unknown calendar 'nope'"),
        ({"calendars": [], "typo": 1}, "typo"),
    ],
)
def test_a_bad_calendars_file_names_what_is_wrong(document: object, message: str) -> None:
    with pytest.raises(CalendarError, match=r"calendars\.yaml") as error:
        parse_calendars(document, "calendars.yaml")
    assert message in str(error.value)


def test_an_unknown_calendar_name_lists_the_known_ones() -> None:
    with pytest.raises(CalendarError, match="known: 24x7, business"):
        DEFAULT_CALENDARS.named("gold")


def test_an_unknown_zone_is_a_calendar_error() -> None:
    with pytest.raises(CalendarError, match="unknown IANA time zone 'Mars/Olympus'"):
        business_calendar().in_zone("Mars/Olympus")


def test_the_example_calendars_file_loads() -> None:
    example = Path(__file__).resolve().parents[3] / "deploy" / "calendars.example.yaml"
    calendars = load_calendars(example)
    saturdays = calendars.named("mx-saturdays").in_zone("Europe/Madrid")  # the pinned zone wins
    assert saturdays.zone.key == "America/Mexico_City"
    assert saturdays.is_open(utc(2026, 11, 28, 17))  # Saturday 11:00 in Mexico City
    business = calendars.for_plan(SupportPlan.BUSINESS_HOURS).in_zone("America/Mexico_City")
    assert not business.is_open(utc(2026, 11, 16, 17))  # a Monday holiday


def test_a_missing_calendars_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match="cannot read the calendars"):
        load_calendars(tmp_path / "none.yaml")
