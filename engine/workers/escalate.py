"""Taking the escalation matrix's steps: from an SLA alert or an acceptance that lapsed, the
``escalation.notified`` records naming who is told, each once. Pure.

What was told is read back from ``tickets.escalations.v1`` (``Escalations.record_told``), so a
worker that restarts, or another that takes the lease over, skips every step already on
the topic: the dedup key names the alert (or the lapse) and the role.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.contract import SlaAlertData, TicketState
from engine.contract.escalation import (
    EscalationData,
    EscalationReason,
    EscalationRole,
    Person,
)
from engine.contract.identity import event_id
from engine.contract.records import EscalationNotified
from engine.workers.agents import AgentsDirectory
from engine.workers.desk import Lapse
from engine.workers.escalation import EscalationPolicy, next_tier, reason_of_alert

UNKNOWN_TICKET_PATIENCE = timedelta(seconds=60)


@dataclass(frozen=True)
class Cause:
    """What calls for the matrix: one alert or one lapse of one ticket."""

    ticket: TicketState
    reason: EscalationReason
    key: str  # the alert's dedup key and repeat, or the lapse
    event_id: str
    deadline: datetime
    explanation: str


def alert_cause(ticket: TicketState, alert: SlaAlertData, alert_event_id: str) -> Cause:
    return Cause(
        ticket=ticket,
        reason=reason_of_alert(alert.repeat),
        key=f"{alert.dedup_key}:{alert.repeat}",
        event_id=alert_event_id,
        deadline=alert.deadline,
        explanation=f"{alert.obligation} ({alert.calendar}): {alert.explanation}",
    )


def lapse_cause(lapse: Lapse) -> Cause:
    ticket = lapse.state
    assigned_at = ticket.assigned_at or lapse.deadline
    taken = (
        f"reassigned to {lapse.reassigned_to}"
        if lapse.reassigned_to
        else f"nobody else can take it now: it stays with {lapse.agent_id}"
    )
    return Cause(
        ticket=ticket,
        reason=EscalationReason.NOT_ACCEPTED,
        key=f"{ticket.ticket_id}:accept:{lapse.agent_id}:{assigned_at.isoformat()}",
        event_id=f"{ticket.ticket_id}:assigned:{lapse.agent_id}:{assigned_at.isoformat()}",
        deadline=lapse.deadline,
        explanation=(
            f"assigned to {lapse.agent_id} at {assigned_at:%Y-%m-%d %H:%M}Z, a {ticket.priority} "
            f"must be accepted within {lapse.acceptance}: due {lapse.deadline:%Y-%m-%d %H:%M}Z, "
            f"not accepted; {taken}"
        ),
    )


def recipients(
    role: EscalationRole, ticket: TicketState, directory: AgentsDirectory, now: datetime
) -> tuple[tuple[Person, ...], str]:
    """Who the role names for this ticket now, and how they were found."""
    agents = directory.agents
    assignee = agents.get(ticket.assignee or "")

    def people(ids: tuple[str, ...]) -> tuple[Person, ...]:
        return tuple(
            Person(id=agents[i].id, name=agents[i].name, email=agents[i].email)
            for i in ids
            if i in agents
        )

    match role:
        case EscalationRole.ASSIGNEE:
            if assignee is None:
                return (), "the ticket has no assignee"
            return people((assignee.id,)), f"the assignee, {assignee.id}"
        case EscalationRole.TEAM_LEAD:
            if assignee is not None and assignee.lead:
                return people((assignee.lead,)), f"{assignee.lead}, lead of {assignee.id}"
            leads = directory.leads_of(ticket.tier)
            return people(leads), f"the leads of {ticket.tier}: {', '.join(leads) or 'none'}"
        case EscalationRole.NEXT_TIER_ON_CALL:
            tier = next_tier(ticket.tier)
            on_call = directory.on_call_for(tier, now)
            return people(on_call), f"on call for {tier} now: {', '.join(on_call) or 'nobody'}"
        case EscalationRole.MANAGER:
            managers = tuple(
                Person(id=m.id, name=m.name, email=m.email) for m in directory.managers
            )
            return managers, "the support managers"
    raise AssertionError(role)


def steps(
    cause: Cause,
    policy: EscalationPolicy,
    directory: AgentsDirectory,
    now: datetime,
    source: str,
) -> list[EscalationNotified]:
    """One record per role of the matrix row, in the row's order."""
    ticket = cause.ticket
    rule = f"escalation.{ticket.priority}.{cause.reason}"
    roles = policy.roles(ticket.priority, cause.reason)
    records: list[EscalationNotified] = []
    for number, role in enumerate(roles, start=1):
        people, found = recipients(role, ticket, directory, now)
        key = f"{cause.key}:{role}"
        told = ", ".join(person.id for person in people) or "nobody"
        records.append(
            EscalationNotified(
                event_id=event_id("escalation.notified", key),
                occurred_at=now,
                source=source,
                data=EscalationData(
                    ticket_id=ticket.ticket_id,
                    dedup_key=key,
                    reason=cause.reason,
                    priority=ticket.priority,
                    tier=ticket.tier,
                    role=role,
                    step=number,
                    recipients=people,
                    rule=rule,
                    deadline=cause.deadline,
                    cause_event_id=cause.event_id,
                    subject=ticket.subject,
                    assignee=ticket.assignee,
                    explanation=(
                        f"{rule} ({policy.origin}), step {number} of {len(roles)}: "
                        f"{role} -> {told} ({found})",
                        cause.explanation,
                    ),
                ),
            )
        )
    return records


@dataclass
class _Waiting:
    alert: SlaAlertData
    event_id: str
    seen_at: datetime


class Escalations:
    """SLA alerts read and steps told, per open ticket; what is still to tell."""

    def __init__(self) -> None:
        self._alerts: dict[str, list[_Waiting]] = defaultdict(list)
        self._told: dict[str, set[str]] = defaultdict(set)

    def record_alert(self, alert: SlaAlertData, alert_event_id: str, now: datetime) -> None:
        self._alerts[alert.ticket_id].append(_Waiting(alert, alert_event_id, now))

    def record_told(self, told: EscalationData) -> None:
        self._told[told.ticket_id].add(told.dedup_key)

    def forget(self, ticket_id: str) -> None:
        """The ticket is resolved: nothing more to escalate."""
        self._alerts.pop(ticket_id, None)
        self._told.pop(ticket_id, None)

    def keep_open(self, ticket_of: Callable[[str], TicketState | None]) -> None:
        """Drop what was told of tickets no longer open (read at start, resolved since)."""
        for ticket_id in [t for t in self._told if ticket_of(t) is None]:
            del self._told[ticket_id]

    def to_tell(
        self,
        causes: list[Cause],
        policy: EscalationPolicy,
        directory: AgentsDirectory,
        now: datetime,
        source: str,
    ) -> list[EscalationNotified]:
        """The steps of ``causes`` not told yet, each once: an alert written twice (the SLA
        worker writes at least once) is two causes with the same steps."""
        records: list[EscalationNotified] = []
        chosen: set[str] = set()
        for cause in causes:
            told = self._told[cause.ticket.ticket_id]
            for record in steps(cause, policy, directory, now, source):
                key = record.data.dedup_key
                if key not in told and key not in chosen:
                    chosen.add(key)
                    records.append(record)
        return records

    def alert_causes(
        self, ticket_of: Callable[[str], TicketState | None], now: datetime
    ) -> list[Cause]:
        """The alerts read since the last call as causes; an alert of a ticket the desk
        does not know (resolved, or its state not read yet) waits a while, then is let go."""
        causes: list[Cause] = []
        for ticket_id in list(self._alerts):
            ticket = ticket_of(ticket_id)
            if ticket is None:
                kept = [
                    w for w in self._alerts[ticket_id] if now - w.seen_at < UNKNOWN_TICKET_PATIENCE
                ]
                if kept:
                    self._alerts[ticket_id] = kept
                else:
                    del self._alerts[ticket_id]
                continue
            causes.extend(
                alert_cause(ticket, w.alert, w.event_id) for w in self._alerts.pop(ticket_id)
            )
        return causes
