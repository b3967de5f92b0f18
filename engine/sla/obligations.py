"""next_update_due: the update obligation of a ticket (DOMAIN.md UPD-P1..UPD-P4).

One pure function decides it, for the timers and for ``engine sla schedule`` alike:

- The obligation is armed at the latest of: the ticket's opening, the last time the
  customer was informed, the last priority change, and the ticket becoming open again
  (reopened, or back from waiting on the customer). A ``customer_replied`` activity
  changes none of these: the customer writing does not inform the customer.
- Its deadline counts in the calendar of the customer's plan, in the customer's zone:
  UPD-P1 two open hours after arming; UPD-P2 and UPD-P3 the close of the open day
  (18:00 local on the business plan, local midnight on 24x7), or of the next open day
  when the customer was informed during this one (that was the day's update); UPD-P4 one
  week of open hours (45 on the business plan, 168 on 24x7).
- Armed while the desk is closed (a business-plan ticket at night, on a weekend or a
  holiday), the count starts at the next opening: P1 is due two hours after it, P2/P3 at
  that day's close, P4 a week of open hours later.
- Resolved: no obligation. Waiting on the customer: none while ``pause_while_waiting``,
  else the clock runs on. Waiting on a third party (an upstream fix, a vendor, an RMA):
  the clock always runs on; the customer is owed news of the wait at the cadence.
- Instance ``n`` counts the armings: 1 at opening, plus one for each update given, each
  priority change and each restart, never more than the ticket's event count (a ticket
  reopened after its row was deleted starts there: ``facts.counted_rearmings``), so the
  alert key ``ticket:UPD-Px:n`` names one obligation and never comes back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from engine.contract import Priority, SlaFacts, TicketStatus
from engine.sla.calendars import ZonedCalendar

P1_EVERY = timedelta(hours=2)
# The statuses whose update obligation runs whatever the policy: a ticket waiting on a
# vendor, an upstream fix or an RMA still owes the customer news at the cadence.
ALWAYS_OWES_UPDATES = frozenset({TicketStatus.OPEN, TicketStatus.WAITING_ON_THIRD_PARTY})


@dataclass(frozen=True)
class SlaPolicy:
    warning_lead: timedelta = timedelta(minutes=30)
    pause_while_waiting: bool = True


@dataclass(frozen=True)
class Obligation:
    ticket_id: str
    name: str
    instance: int
    priority: Priority
    armed_at: datetime
    armed_by: str
    deadline: datetime
    calendar: str
    zone: str
    explanation: str

    @property
    def key(self) -> str:
        return f"{self.ticket_id}:{self.name}:{self.instance}"


def obligation_name(priority: Priority) -> str:
    return f"UPD-{priority.value}"


def _when(instant: datetime, calendar: ZonedCalendar) -> str:
    local = calendar.local(instant)
    return f"{local:%a %Y-%m-%d %H:%M %Z} ({instant.astimezone(UTC):%Y-%m-%dT%H:%MZ})"


def cadence_deadline(
    priority: Priority, calendar: ZonedCalendar, start: datetime, informed: bool = False
) -> tuple[datetime, str]:
    """The deadline of one cadence step counted from ``start``, and the arithmetic in words.
    ``informed``: ``start`` is an update given to the customer (it was that day's update)."""
    opens = calendar.next_open(start)
    closed = (
        ""
        if opens == start
        else f"; the desk is closed then, counting from {_when(opens, calendar)}"
    )
    if priority is Priority.P1:
        deadline = calendar.add_open_time(start, P1_EVERY)
        rule = "every 2 open hours"
    elif priority is Priority.P4:
        week = calendar.calendar.weekly_open
        deadline = calendar.add_open_time(start, week)
        rule = f"within a week of open hours ({week.total_seconds() / 3600:g} h)"
    elif informed and opens == start:
        deadline = calendar.end_of_open_day(calendar.end_of_open_day(start))
        rule = "by the close of the next open day (today's update was given)"
    else:
        deadline = calendar.end_of_open_day(start)
        rule = "by the close of the customer's open day"
    words = f"{rule}, from {_when(start, calendar)}{closed}: due {_when(deadline, calendar)}"
    return deadline, words


class _Arming(NamedTuple):
    at: datetime
    by: str
    informed: bool = False


def _armed(facts: SlaFacts, policy: SlaPolicy) -> _Arming | None:
    if facts.status is TicketStatus.RESOLVED:
        return None
    if facts.status is TicketStatus.WAITING_ON_CUSTOMER and policy.pause_while_waiting:
        return None
    # On a tie the first named explains it: an update given as the ticket opened is an update.
    candidates = []
    if facts.last_informed_at is not None:
        update = f"customer informed (update {facts.informed_count})"
        candidates.append(_Arming(facts.last_informed_at, update, informed=True))
    if facts.status in ALWAYS_OWES_UPDATES and facts.resumed_at is not None:
        candidates.append(_Arming(facts.resumed_at, "ticket open again"))
    candidates.append(_Arming(facts.opened_at, "ticket opened"))
    if facts.priority_since is not None:
        candidates.append(_Arming(facts.priority_since, f"priority set to {facts.priority}"))
    return max(candidates, key=lambda candidate: candidate.at)


def next_update_due(
    facts: SlaFacts, calendar: ZonedCalendar, policy: SlaPolicy = SlaPolicy()
) -> Obligation | None:
    """The ticket's current update obligation, or None when it owes none."""
    armed = _armed(facts, policy)
    if armed is None:
        return None
    name = obligation_name(facts.priority)
    instance = facts.informed_count + facts.rearmings + 1
    deadline, words = cadence_deadline(facts.priority, calendar, armed.at, armed.informed)
    explanation = (
        f"{name} #{instance} ({facts.plan.value} plan, calendar {calendar.calendar.describe()}, "
        f"zone {calendar.zone.key}): armed by {armed.by}; inform {words}"
    )
    return Obligation(
        ticket_id=facts.ticket_id,
        name=name,
        instance=instance,
        priority=facts.priority,
        armed_at=armed.at,
        armed_by=armed.by,
        deadline=deadline,
        calendar=calendar.name,
        zone=calendar.zone.key,
        explanation=explanation,
    )


def breach_deadlines(obligation: Obligation, calendar: ZonedCalendar) -> Iterator[datetime]:
    """The deadline, then each further cadence step while the obligation stays unfulfilled."""
    deadline = obligation.deadline
    while True:
        yield deadline
        deadline, _ = cadence_deadline(obligation.priority, calendar, deadline)
