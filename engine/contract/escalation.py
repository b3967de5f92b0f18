"""The escalation family: who was told about a ticket that was not looked after in time."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from engine.contract.base import Priority, Record, Tier, UtcDatetime


class EscalationReason(StrEnum):
    SLA_WARNING = "sla_warning"
    SLA_BREACH = "sla_breach"
    SLA_REPEATED_BREACH = "sla_repeated_breach"
    NOT_ACCEPTED = "not_accepted"


class Handover(StrEnum):
    """Why a ticket changes hands (the tier workers)."""

    NEW = "new"  # nobody had it
    NOT_ACCEPTED = "not_accepted"  # the assignee did not accept in time
    GIVEN_BACK = "given_back"  # the assignee went away or signed out before accepting


class EscalationRole(StrEnum):
    ASSIGNEE = "assignee"
    TEAM_LEAD = "team_lead"
    NEXT_TIER_ON_CALL = "next_tier_on_call"
    MANAGER = "manager"


class Person(Record):
    id: str
    name: str
    email: str


class EscalationData(Record):
    """One step of the escalation matrix, taken: the people of one role told about one
    alert. ``dedup_key`` names the step; a consumer acts on each key once."""

    ticket_id: str
    dedup_key: str = Field(description="alert or lapse, then the role: once per key")
    reason: EscalationReason
    priority: Priority
    tier: Tier
    role: EscalationRole
    step: int = Field(ge=1, description="The role's place in the matrix row, from 1")
    recipients: tuple[Person, ...] = Field(description="Empty: the role names nobody now")
    rule: str = Field(description="The matrix row, e.g. escalation.P1.sla_breach")
    deadline: UtcDatetime = Field(description="The deadline that was missed or is near")
    cause_event_id: str = Field(description="The SLA alert, or the assignment not accepted")
    subject: str = ""
    assignee: str | None = None
    explanation: tuple[str, ...] = Field(description="Which rule, which deadline, which arithmetic")
