"""What the desk's own people are told when the escalation matrix takes a step: one mail to
the people an ``escalation.notified`` record names. Pure."""

from __future__ import annotations

from email.message import EmailMessage

from engine.contract.escalation import EscalationReason
from engine.contract.identity import event_id, ticket_tag
from engine.contract.records import EscalationNotified
from engine.notify.notices import Notice, may_receive_mail

_HEADLINE = {
    EscalationReason.SLA_WARNING: "customer update due soon",
    EscalationReason.SLA_BREACH: "customer update missed",
    EscalationReason.SLA_REPEATED_BREACH: "customer update missed again",
    EscalationReason.NOT_ACCEPTED: "not accepted in time",
}


def escalation_notice(record: EscalationNotified, sender: str, engine_domain: str) -> Notice | None:
    """The mail for one escalation step, or None when the step names nobody to write to."""
    told = record.data
    to = [person.email for person in told.recipients if may_receive_mail(person.email)]
    if not to:
        return None
    serial = event_id("notice", record.event_id).rpartition(":")[2]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(dict.fromkeys(to))
    message["Subject"] = (
        f"{ticket_tag(told.ticket_id)} Escalation {told.priority} {told.tier}: "
        f"{_HEADLINE[told.reason]} ({told.role.value.replace('_', ' ')})"
    )
    message["Message-ID"] = f"<esc.{serial}.{told.ticket_id}@{engine_domain}>"
    message["X-Ticket-Id"] = told.ticket_id
    message["Auto-Submitted"] = "auto-generated"
    names = ", ".join(f"{person.name} <{person.email}>" for person in told.recipients)
    lines = [
        f"Ticket {told.ticket_id}: {told.subject or '-'}",
        f"Priority {told.priority}, {told.tier}, assignee {told.assignee or 'nobody'}",
        f"Deadline {told.deadline:%Y-%m-%d %H:%M} UTC",
        f"Told: {names} ({told.role.value.replace('_', ' ')})",
        "",
        "Why:",
        *(f"- {line}" for line in told.explanation),
        "",
        f"Rule {told.rule}; step {told.step}; key {told.dedup_key}",
    ]
    message.set_content("\n".join(lines) + "\n")
    return Notice(message["To"], message, "escalation")
