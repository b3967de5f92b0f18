"""When an obligation alerts: a warning ``warning_lead`` before the deadline, a breach at
the deadline, and a repeated breach at each further cadence step while it is unfulfilled.

Each alert has a visible identity: the obligation key ``ticket:UPD-Px:n`` and its repeat
number (0 for the warning, 1 for the breach, 2... for repeats). Its event id derives from
both, so an alert emitted twice (a crash between the send and the bookkeeping) is the same
record to every consumer. A worker that was away emits only the latest alert that fell
due meanwhile (a late warning after the breach says nothing new).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from engine.contract import SlaAlertData, SlaBreached, SlaProgress, SlaWarning, parse_record
from engine.contract.identity import event_id
from engine.sla.calendars import ZonedCalendar
from engine.sla.obligations import Obligation, SlaPolicy, cadence_deadline

WARNING_REPEAT = 0
# Cadence steps one call of ``step`` walks (about 0.1 s on a slow machine). A ticket whose
# deadline passed long ago (a state opened in 1900: half a million P1 steps, most of a
# minute with the event loop held) is caught up over several ticks instead.
MAX_STEPS_PER_CALL = 1_000


@dataclass(frozen=True)
class PlannedAlert:
    repeat: int
    due_at: datetime
    deadline: datetime

    @property
    def is_warning(self) -> bool:
        return self.repeat == WARNING_REPEAT


def progress_of(obligation: Obligation, stored: SlaProgress | None) -> SlaProgress:
    """The stored progress if it is this obligation's; a fresh one otherwise."""
    if stored is not None and stored.key == obligation.key:
        return stored
    return SlaProgress(key=obligation.key)


def next_alert(
    obligation: Obligation, progress: SlaProgress, calendar: ZonedCalendar, policy: SlaPolicy
) -> PlannedAlert:
    if not progress.warned and progress.breaches == 0:
        due = max(obligation.armed_at, obligation.deadline - policy.warning_lead)
        return PlannedAlert(WARNING_REPEAT, due, obligation.deadline)
    if progress.last_breach_at is None:
        return PlannedAlert(1, obligation.deadline, obligation.deadline)
    deadline, _ = cadence_deadline(obligation.priority, calendar, progress.last_breach_at)
    return PlannedAlert(progress.breaches + 1, deadline, deadline)


def _after(progress: SlaProgress, alert: PlannedAlert) -> SlaProgress:
    if alert.is_warning:
        return progress.model_copy(update={"warned": True})
    return progress.model_copy(
        update={"warned": True, "breaches": alert.repeat, "last_breach_at": alert.deadline}
    )


@dataclass(frozen=True)
class AlertStep:
    emit: PlannedAlert | None
    progress: SlaProgress
    next_due: PlannedAlert


def step(
    obligation: Obligation,
    stored: SlaProgress | None,
    calendar: ZonedCalendar,
    policy: SlaPolicy,
    now: datetime,
    max_steps: int = MAX_STEPS_PER_CALL,
) -> AlertStep:
    """What is due at ``now``: at most one alert to emit (the latest that fell due), the
    progress after it, and the next alert to wait for. Past ``max_steps`` alerts that fell
    due, it stops there and emits nothing: the next alert is still due, and the next call
    goes on from this progress (only the latest is ever emitted)."""
    progress = progress_of(obligation, stored)
    emit: PlannedAlert | None = None
    planned = next_alert(obligation, progress, calendar, policy)
    for _ in range(max_steps):
        if planned.due_at > now:
            break
        emit = planned
        progress = _after(progress, planned)
        planned = next_alert(obligation, progress, calendar, policy)
    caught_up = planned.due_at > now
    return AlertStep(emit if caught_up else None, progress, planned)


def alert_record(
    obligation: Obligation, alert: PlannedAlert, now: datetime, source: str
) -> SlaWarning | SlaBreached:
    if alert.is_warning:
        words = f"warning: {obligation.name} #{obligation.instance} falls due at the deadline"
    elif alert.repeat == 1:
        words = "breached: the customer was not informed by the deadline"
    else:
        words = f"breached again (repeat {alert.repeat}): still not informed by this step"
    data = SlaAlertData(
        ticket_id=obligation.ticket_id,
        obligation=obligation.name,
        instance=obligation.instance,
        dedup_key=obligation.key,
        deadline=alert.deadline,
        calendar=f"{obligation.calendar} ({obligation.zone})",
        explanation=f"{words}. {obligation.explanation}",
        repeat=alert.repeat,
    )
    identity = f"{obligation.key}:{alert.repeat}"
    if alert.is_warning:
        return SlaWarning(
            event_id=event_id("sla.warning", identity), occurred_at=now, source=source, data=data
        )
    return SlaBreached(
        event_id=event_id("sla.breached", identity), occurred_at=now, source=source, data=data
    )


def progress_with_sent(progress: SlaProgress, sent: Iterable[SlaAlertData]) -> SlaProgress:
    """The progress once the alerts already on the topic are counted: a worker that took
    a partition over finds there the alerts its previous owner sent but did not record
    (stopped or killed between an alert's acknowledgement and its row). Alerts of another
    obligation instance, and those the progress already counts, change nothing."""
    for alert in sorted(sent, key=lambda alert: alert.repeat):
        if alert.dedup_key != progress.key:
            continue
        if alert.repeat == WARNING_REPEAT:
            if not progress.warned:
                progress = progress.model_copy(update={"warned": True})
        elif alert.repeat > progress.breaches:
            progress = _after(progress, PlannedAlert(alert.repeat, alert.deadline, alert.deadline))
    return progress


def sent_alerts_by_ticket(values: Iterable[bytes]) -> dict[str, list[SlaAlertData]]:
    """The alerts among ``values`` (records of ``sla.alerts.v1``), by ticket; a record that
    is not an alert is passed over (it was dead-lettered by whoever read it first)."""
    found: dict[str, list[SlaAlertData]] = {}
    for value in values:
        try:
            record = parse_record(value)
        except (ValidationError, ValueError):
            continue
        if isinstance(record, (SlaWarning, SlaBreached)):
            found.setdefault(record.data.ticket_id, []).append(record.data)
    return found
