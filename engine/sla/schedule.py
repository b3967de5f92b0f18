"""``engine sla schedule``: the deadlines that follow from a ticket's history, explained.

The same ``next_update_due`` as the timers: each update given fulfils the obligation of
its moment (on time or late) and arms the next; after the last, the open obligation is
shown with its warning and the breaches that would repeat while it stays unfulfilled.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import islice

from engine.contract import SlaFacts
from engine.sla.calendars import ZonedCalendar
from engine.sla.obligations import SlaPolicy, breach_deadlines, next_update_due


def _at(instant: datetime, calendar: ZonedCalendar) -> str:
    return f"{calendar.local(instant):%a %Y-%m-%d %H:%M %Z}"


def schedule_lines(
    facts: SlaFacts,
    calendar: ZonedCalendar,
    informed_at: Sequence[datetime],
    policy: SlaPolicy,
    repeats: int = 3,
) -> list[str]:
    lines = []
    for count, informed in enumerate(sorted(informed_at), start=1):
        obligation = next_update_due(facts, calendar, policy)
        if obligation is None:
            break
        lines.append(obligation.explanation)
        late = informed - obligation.deadline
        verdict = "on time" if late.total_seconds() <= 0 else f"LATE by {late}"
        lines.append(f"  informed {_at(informed, calendar)}: {verdict}")
        facts = facts.model_copy(update={"last_informed_at": informed, "informed_count": count})
    obligation = next_update_due(facts, calendar, policy)
    if obligation is None:
        lines.append(f"no update obligation: the ticket is {facts.status.value}")
        return lines
    lines.append(obligation.explanation)
    warning = max(obligation.armed_at, obligation.deadline - policy.warning_lead)
    lines.append(f"  warning {_at(warning, calendar)} ({policy.warning_lead} before)")
    steps = islice(breach_deadlines(obligation, calendar), repeats)
    for repeat, deadline in enumerate(steps, start=1):
        what = "breach" if repeat == 1 else f"breach repeat {repeat}"
        lines.append(f"  {what} {_at(deadline, calendar)} if still not informed")
    return lines
