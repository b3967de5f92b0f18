"""Timelines with an injected clock: what alerts a ticket's history produces, and when.

The same functions as the SLA worker's timer (next_update_due, step, alert_record), ticked
every five minutes of a FrozenClock, across a DST change and a holiday."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.clock import FrozenClock
from engine.contract import Priority, SlaFacts, SlaProgress, SupportPlan, TicketStatus
from engine.sla.alerts import alert_record, step
from engine.sla.calendars import DEFAULT_CALENDARS, ZonedCalendar, parse_calendars
from engine.sla.obligations import SlaPolicy, next_update_due

TICK = timedelta(minutes=5)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@dataclass
class Timeline:
    facts: SlaFacts
    calendar: ZonedCalendar
    policy: SlaPolicy = field(default_factory=SlaPolicy)
    clock: FrozenClock = field(init=False)
    progress: SlaProgress | None = None
    alerts: list[tuple[datetime, str, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clock = FrozenClock(self.facts.opened_at)

    def run_until(self, until: datetime) -> None:
        while self.clock.now() < until:
            self.clock.advance(TICK)
            self.tick()

    def tick(self) -> None:
        now = self.clock.now()
        obligation = next_update_due(self.facts, self.calendar, self.policy)
        if obligation is None:
            return
        due = step(obligation, self.progress, self.calendar, self.policy, now)
        if due.emit is not None:
            record = alert_record(obligation, due.emit, now, "test")
            self.alerts.append((now, record.kind.value, record.data.dedup_key, due.emit.repeat))
        self.progress = due.progress

    def change(self, **facts: Any) -> None:
        self.facts = self.facts.model_copy(update=facts)

    def inform(self) -> None:
        self.change(informed_count=self.facts.informed_count + 1, last_informed_at=self.clock.now())


def opened(priority: Priority, at: datetime, plan: SupportPlan, zone: str) -> Timeline:
    facts = SlaFacts(
        ticket_id="T-1", priority=priority, status=TicketStatus.OPEN, opened_at=at, plan=plan,
        timezone=zone,
    )  # fmt: skip
    return Timeline(facts, DEFAULT_CALENDARS.for_plan(plan).in_zone(zone))


def test_p1_warns_breaches_repeats_until_informed_then_arms_the_next() -> None:
    # Madrid, 24x7, across the night Europe falls back (2026-10-25 03:00 CEST -> 02:00 CET).
    timeline = opened(Priority.P1, utc(2026, 10, 24, 22), SupportPlan.ALWAYS, "Europe/Madrid")
    timeline.run_until(utc(2026, 10, 25, 4, 2))
    assert timeline.alerts == [
        (utc(2026, 10, 24, 23, 30), "sla.warning", "T-1:UPD-P1:1", 0),
        (utc(2026, 10, 25, 0), "sla.breached", "T-1:UPD-P1:1", 1),
        (utc(2026, 10, 25, 2), "sla.breached", "T-1:UPD-P1:1", 2),
        (utc(2026, 10, 25, 4), "sla.breached", "T-1:UPD-P1:1", 3),
    ]
    timeline.inform()  # at 04:05Z: #1 fulfilled, #2 due two hours later
    timeline.run_until(utc(2026, 10, 25, 6, 10))
    assert timeline.alerts[4:] == [
        (utc(2026, 10, 25, 5, 35), "sla.warning", "T-1:UPD-P1:2", 0),
        (utc(2026, 10, 25, 6, 5), "sla.breached", "T-1:UPD-P1:2", 1),
    ]


def test_p2_on_the_business_plan_in_new_york_across_the_spring_dst_change() -> None:
    # Friday 2026-03-06 16:00 EST; clocks go forward on Sunday the 8th.
    timeline = opened(
        Priority.P2, utc(2026, 3, 6, 21), SupportPlan.BUSINESS_HOURS, "America/New_York"
    )
    timeline.run_until(utc(2026, 3, 9, 22, 1))
    assert timeline.alerts == [
        (utc(2026, 3, 6, 22, 30), "sla.warning", "T-1:UPD-P2:1", 0),  # 17:30 EST
        (utc(2026, 3, 6, 23), "sla.breached", "T-1:UPD-P2:1", 1),  # 18:00 EST
        (utc(2026, 3, 9, 22), "sla.breached", "T-1:UPD-P2:1", 2),  # Monday 18:00 EDT
    ]


def test_a_holiday_is_skipped_by_the_end_of_day_cadence() -> None:
    calendars = parse_calendars(
        {
            "calendars": [
                {
                    "name": "mx",
                    "hours": {day: "09:00-18:00" for day in ("mon", "tue", "wed", "thu", "fri")},
                    "holidays": ["2026-12-25"],
                }
            ],
            "plans": {"business_hours": "mx"},
        },
        "test",
    )
    timeline = opened(
        Priority.P3, utc(2026, 12, 24, 16), SupportPlan.BUSINESS_HOURS, "America/Mexico_City"
    )
    timeline.calendar = calendars.for_plan(SupportPlan.BUSINESS_HOURS).in_zone(
        "America/Mexico_City"
    )
    timeline.inform()  # Thursday 10:00: Thursday's update given, next by the next close
    timeline.run_until(utc(2026, 12, 29, 0, 1))
    assert timeline.alerts == [
        (utc(2026, 12, 28, 23, 30), "sla.warning", "T-1:UPD-P3:2", 0),  # Mon 17:30, not Fri
        (utc(2026, 12, 29, 0), "sla.breached", "T-1:UPD-P3:2", 1),
    ]


def test_resolution_disarms_and_a_priority_change_re_arms() -> None:
    timeline = opened(Priority.P3, utc(2026, 11, 23, 16), SupportPlan.ALWAYS, "UTC")
    timeline.run_until(utc(2026, 11, 23, 18))
    timeline.change(priority=Priority.P1, priority_since=timeline.clock.now(), rearmings=1)
    timeline.run_until(utc(2026, 11, 23, 20, 1))
    assert timeline.alerts == [
        (utc(2026, 11, 23, 19, 30), "sla.warning", "T-1:UPD-P1:2", 0),
        (utc(2026, 11, 23, 20), "sla.breached", "T-1:UPD-P1:2", 1),
    ]
    timeline.change(status=TicketStatus.RESOLVED)
    timeline.run_until(utc(2026, 11, 25))
    assert len(timeline.alerts) == 2


def test_waiting_on_the_customer_pauses_when_configured() -> None:
    timeline = opened(Priority.P1, utc(2026, 11, 23, 16), SupportPlan.ALWAYS, "UTC")
    timeline.change(status=TicketStatus.WAITING_ON_CUSTOMER)
    timeline.run_until(utc(2026, 11, 24))
    assert timeline.alerts == []
    timeline.change(status=TicketStatus.OPEN, resumed_at=timeline.clock.now(), rearmings=1)
    timeline.run_until(utc(2026, 11, 24, 2))
    assert timeline.alerts == [
        (utc(2026, 11, 24, 1, 30), "sla.warning", "T-1:UPD-P1:2", 0),
        (utc(2026, 11, 24, 2), "sla.breached", "T-1:UPD-P1:2", 1),
    ]


def test_a_worker_that_was_away_emits_only_the_latest_alert_due() -> None:
    timeline = opened(Priority.P1, utc(2026, 11, 23, 16), SupportPlan.ALWAYS, "UTC")
    timeline.clock.advance(timedelta(hours=7))
    timeline.tick()
    assert timeline.alerts == [(utc(2026, 11, 23, 23), "sla.breached", "T-1:UPD-P1:1", 3)]
    assert timeline.progress == SlaProgress(
        key="T-1:UPD-P1:1", warned=True, breaches=3, last_breach_at=utc(2026, 11, 23, 22)
    )


def test_an_alert_emitted_twice_is_the_same_record() -> None:
    timeline = opened(Priority.P1, utc(2026, 11, 23, 16), SupportPlan.ALWAYS, "UTC")
    obligation = next_update_due(timeline.facts, timeline.calendar)
    assert obligation is not None
    due = step(obligation, None, timeline.calendar, SlaPolicy(), utc(2026, 11, 23, 18))
    assert due.emit is not None
    first = alert_record(obligation, due.emit, utc(2026, 11, 23, 18), "a")
    again = alert_record(obligation, due.emit, utc(2026, 11, 23, 18, 1), "b")
    assert first.event_id == again.event_id
    assert (first.data.dedup_key, first.data.repeat) == ("T-1:UPD-P1:1", 1)
    assert first.data.calendar == "24x7 (UTC)"
    assert "breached: the customer was not informed by the deadline" in first.data.explanation


def test_a_deadline_long_past_is_caught_up_in_bounded_calls_and_only_the_latest_alert_emitted() -> (
    None
):
    timeline = opened(Priority.P1, utc(2026, 11, 20, 16), SupportPlan.ALWAYS, "UTC")
    obligation = next_update_due(timeline.facts, timeline.calendar)
    assert obligation is not None
    now = utc(2026, 11, 23, 18, 30)
    at_once = step(obligation, None, timeline.calendar, SlaPolicy(), now)
    progress, calls = None, 0
    while True:
        calls += 1
        due = step(obligation, progress, timeline.calendar, SlaPolicy(), now, max_steps=5)
        progress = due.progress
        if due.next_due.due_at > now:
            break
        assert due.emit is None  # not caught up yet: nothing said
    assert calls > 1
    assert (due.emit, due.progress, due.next_due) == (
        at_once.emit, at_once.progress, at_once.next_due,
    )  # fmt: skip
