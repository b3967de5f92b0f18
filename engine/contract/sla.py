"""The SLA family: alerts, the facts behind them, and the clocks' rows."""

from __future__ import annotations

from pydantic import Field

from engine.contract.base import Priority, Record, SupportPlan, TicketStatus, UtcDatetime


class SlaAlertData(Record):
    ticket_id: str
    obligation: str = Field(description="Rule name, e.g. UPD-P1")
    instance: int = Field(ge=1)
    dedup_key: str = Field(description="ticket:obligation:n; a consumer shows each key once")
    deadline: UtcDatetime
    calendar: str
    explanation: str
    repeat: int = Field(
        default=1,
        ge=0,
        description="0: the warning; 1: the breach; 2 and on: repeated breaches. With "
        "dedup_key, it names one alert",
    )


class SlaFacts(Record):
    """What a ticket's update obligation depends on, read from its state."""

    ticket_id: str
    priority: Priority
    status: TicketStatus
    opened_at: UtcDatetime
    priority_since: UtcDatetime | None = None
    resumed_at: UtcDatetime | None = Field(
        default=None,
        description="When the ticket became open again after a time without obligation "
        "(resolved, or waiting on the customer while that pauses the clock)",
    )
    last_informed_at: UtcDatetime | None = None
    informed_count: int = Field(default=0, ge=0)
    rearmings: int = Field(
        default=0, ge=0, description="Priority changes and restarts since the SLA worker saw it"
    )
    plan: SupportPlan = SupportPlan.BUSINESS_HOURS
    timezone: str = "America/Mexico_City"
    calendar: str | None = Field(default=None, description="None: the calendar of the plan")


class SlaProgress(Record):
    """Which alerts of one obligation instance were emitted."""

    key: str = Field(description="ticket:obligation:n")
    warned: bool = False
    breaches: int = Field(default=0, ge=0)
    last_breach_at: UtcDatetime | None = Field(
        default=None, description="The deadline of the last breach emitted"
    )


class SlaClockData(Record):
    """An armed obligation of an open ticket: the SLA worker's table row."""

    ticket_id: str
    partition: int = Field(ge=0)
    facts: SlaFacts
    progress: SlaProgress | None
    next_alert_at: UtcDatetime | None = Field(description="None: no obligation now")
