"""next_update_due, rule by rule (DOMAIN.md UPD-P1..UPD-P4), in the customer's calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.contract import Priority, SlaFacts, SupportPlan, TicketStatus
from engine.sla.calendars import DEFAULT_CALENDARS, ZonedCalendar
from engine.sla.obligations import SlaPolicy, breach_deadlines, next_update_due


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def calendar(plan: SupportPlan, zone: str) -> ZonedCalendar:
    return DEFAULT_CALENDARS.for_plan(plan).in_zone(zone)


BUSINESS_MX = calendar(SupportPlan.BUSINESS_HOURS, "America/Mexico_City")
BUSINESS_NY = calendar(SupportPlan.BUSINESS_HOURS, "America/New_York")
ALWAYS_NY = calendar(SupportPlan.ALWAYS, "America/New_York")
MONDAY_10_MX = utc(2026, 11, 23, 16)


def facts(priority: Priority = Priority.P1, **changes: Any) -> SlaFacts:
    base = SlaFacts(
        ticket_id="T-1", priority=priority, status=TicketStatus.OPEN, opened_at=MONDAY_10_MX
    )
    return base.model_copy(update=changes)


def deadline(ticket: SlaFacts, zoned: ZonedCalendar = BUSINESS_MX, **policy: Any) -> datetime:
    obligation = next_update_due(ticket, zoned, SlaPolicy(**policy))
    assert obligation is not None
    return obligation.deadline


@pytest.mark.parametrize(
    ("priority", "opened_at", "due", "why"),
    [
        (Priority.P1, utc(2026, 11, 23, 16), utc(2026, 11, 23, 18), "Mon 10:00 + 2 h"),
        (Priority.P1, utc(2026, 11, 27, 23), utc(2026, 11, 30, 16), "Fri 17:00: 1 h + Mon 1 h"),
        (Priority.P2, utc(2026, 11, 23, 16), utc(2026, 11, 24, 0), "Mon 10:00: Mon 18:00"),
        (Priority.P3, utc(2026, 11, 23, 16), utc(2026, 11, 24, 0), "P3 like P2"),
        (Priority.P4, utc(2026, 11, 23, 16), utc(2026, 11, 30, 16), "45 open hours: Mon 10:00"),
    ],
)
def test_each_priority_s_cadence_on_the_business_plan(
    priority: Priority, opened_at: datetime, due: datetime, why: str
) -> None:
    assert deadline(facts(priority, opened_at=opened_at)) == due, why


@pytest.mark.parametrize(
    ("priority", "due", "why"),
    [
        (Priority.P1, utc(2026, 11, 30, 17), "Sat 03:00 local: Mon 09:00 + 2 h = 11:00"),
        (Priority.P2, utc(2026, 12, 1, 0), "Sat night: the close of Monday"),
        (Priority.P4, utc(2026, 12, 5, 0), "45 open hours from Monday 09:00: Friday 18:00"),
    ],
)
def test_a_ticket_arriving_while_the_desk_is_closed_counts_from_the_next_opening(
    priority: Priority, due: datetime, why: str
) -> None:
    saturday_night = utc(2026, 11, 28, 9)
    assert deadline(facts(priority, opened_at=saturday_night)) == due, why
    obligation = next_update_due(facts(priority, opened_at=saturday_night), BUSINESS_MX)
    assert obligation is not None
    assert (
        "the desk is closed then, counting from Mon 2026-11-30 09:00 CST" in obligation.explanation
    )


def test_on_24x7_p2_is_due_at_the_end_of_the_local_day_even_on_a_dst_day() -> None:
    # New York springs forward on Sunday 2026-03-08: that day has 23 hours.
    sunday_morning = utc(2026, 3, 8, 6)  # 01:00 EST
    assert deadline(facts(Priority.P2, opened_at=sunday_morning), ALWAYS_NY) == utc(2026, 3, 9, 4)
    p1 = facts(Priority.P1, opened_at=sunday_morning)
    assert deadline(p1, ALWAYS_NY) == sunday_morning + timedelta(hours=2)  # 01:00 EST -> 04:00 EDT


def test_business_hours_keep_their_local_time_across_the_dst_change() -> None:
    friday_17_est = utc(2026, 3, 6, 22)
    # One open hour on Friday (EST), one on Monday from 09:00 EDT (13:00Z).
    assert deadline(facts(opened_at=friday_17_est), BUSINESS_NY) == utc(2026, 3, 9, 14)


def test_informing_fulfils_the_obligation_and_arms_the_next() -> None:
    informed = facts(informed_count=1, last_informed_at=MONDAY_10_MX + timedelta(minutes=90))
    obligation = next_update_due(informed, BUSINESS_MX)
    assert obligation is not None
    assert (obligation.name, obligation.instance, obligation.key) == ("UPD-P1", 2, "T-1:UPD-P1:2")
    assert obligation.deadline == MONDAY_10_MX + timedelta(minutes=210)
    assert "armed by customer informed (update 1)" in obligation.explanation


def test_a_p2_update_given_during_the_day_is_that_day_s_update() -> None:
    monday_17 = utc(2026, 11, 23, 23)
    informed = facts(Priority.P2, informed_count=1, last_informed_at=monday_17)
    assert deadline(informed) == utc(2026, 11, 25, 0)  # Tuesday 18:00
    at_night = facts(Priority.P2, informed_count=1, last_informed_at=utc(2026, 11, 24, 3))
    assert deadline(at_night) == utc(2026, 11, 25, 0)  # Monday 21:00: Tuesday 18:00 too


def test_resolution_disarms() -> None:
    assert next_update_due(facts(status=TicketStatus.RESOLVED), BUSINESS_MX) is None


def test_a_priority_change_re_arms_by_the_new_priority() -> None:
    raised = facts(Priority.P1, priority_since=MONDAY_10_MX + timedelta(hours=3))
    obligation = next_update_due(raised, BUSINESS_MX)
    assert obligation is not None
    assert obligation.name == "UPD-P1"
    assert obligation.deadline == MONDAY_10_MX + timedelta(hours=5)
    assert "armed by priority set to P1" in obligation.explanation


def test_waiting_on_the_customer_pauses_only_when_configured() -> None:
    waiting = facts(status=TicketStatus.WAITING_ON_CUSTOMER)
    assert next_update_due(waiting, BUSINESS_MX, SlaPolicy(pause_while_waiting=True)) is None
    assert deadline(waiting, pause_while_waiting=False) == deadline(facts())


@pytest.mark.parametrize("pause_while_waiting", [True, False])
def test_waiting_on_a_third_party_never_pauses_the_update_obligation(
    pause_while_waiting: bool,
) -> None:
    policy = SlaPolicy(pause_while_waiting=pause_while_waiting)
    for running in (facts(), facts(resumed_at=MONDAY_10_MX + timedelta(hours=1))):
        waiting = running.model_copy(update={"status": TicketStatus.WAITING_ON_THIRD_PARTY})
        on_vendor = next_update_due(waiting, BUSINESS_MX, policy)
        assert on_vendor == next_update_due(running, BUSINESS_MX, policy)


def test_a_ticket_open_again_restarts_its_cadence() -> None:
    resumed = facts(resumed_at=MONDAY_10_MX + timedelta(hours=4))
    assert deadline(resumed) == MONDAY_10_MX + timedelta(hours=6)


def test_breaches_repeat_at_each_further_cadence_step() -> None:
    obligation = next_update_due(facts(Priority.P2), BUSINESS_MX)
    assert obligation is not None
    steps = breach_deadlines(obligation, BUSINESS_MX)
    assert [next(steps) for _ in range(5)] == [
        utc(2026, 11, 24, 0),  # Mon 18:00
        utc(2026, 11, 25, 0),
        utc(2026, 11, 26, 0),
        utc(2026, 11, 27, 0),
        utc(2026, 11, 28, 0),  # Fri 18:00; then Monday
    ]
    assert next(steps) == utc(2026, 12, 1, 0)
