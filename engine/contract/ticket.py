"""The ticket family: the message rules read, their decision, and the ticket's state."""

from __future__ import annotations

from pydantic import Field

from engine.contract.base import (
    Channel,
    Priority,
    Record,
    SenderCheck,
    SpecialRoute,
    SupportPlan,
    ThirdPartyWaitKind,
    TicketStatus,
    Tier,
    UtcDatetime,
)
from engine.contract.trap import AlarmState, TrapFacts


class CustomerProfile(Record):
    """The customer fields rules may read, from the customer directory."""

    customer_id: str
    name: str = ""
    language: str | None = None
    timezone: str = "America/Mexico_City"
    plan: SupportPlan = SupportPlan.BUSINESS_HOURS
    version: str | None = None
    modules: tuple[str, ...] = ()


class TicketMessage(Record):
    """What the rules read: one message of a ticket, as any channel provides it.

    ``engine classify`` reads exactly this, one JSON object a line.
    """

    channel: Channel
    subject: str = ""
    body: str = ""
    sender: str = ""
    customer: CustomerProfile | None = Field(default=None, description="None: an unknown customer")
    trap: TrapFacts | None = None
    suggested_priority: Priority | None = Field(
        default=None, description="An agent's or a device's own priority suggestion"
    )


class RuleMatch(Record):
    """One rule that fired, and what in the input made it fire."""

    rule_id: str
    field: str
    matched: tuple[str, ...]


class ImpactFact(Record):
    """A fact the impact matrix reads (what is hit, how widely, how badly ...), with the
    words that state it; ``value`` is ``unknown`` when the message states none."""

    fact: str
    value: str
    evidence: tuple[str, ...] = ()


class Classification(Record):
    priority: Priority
    priority_by_default: bool = Field(
        default=False, description="No rule set the priority: it is the rule set's default"
    )
    category: str
    tags: tuple[str, ...]
    skills: tuple[str, ...] = ()
    special_routes: tuple[SpecialRoute, ...] = Field(
        default=(), description="Special routes asked for by rules (the route tree may add more)"
    )
    matches: tuple[RuleMatch, ...]
    explanation: tuple[str, ...]
    ruleset_version: str
    impact: tuple[ImpactFact, ...] = Field(
        default=(), description="The facts the impact matrix read, in the rule set's order"
    )
    impact_row: str | None = Field(
        default=None, description="The impact matrix row that gave the priority candidate"
    )


class RouteDecision(Record):
    tier: Tier
    special_routes: tuple[SpecialRoute, ...]
    route_path: tuple[str, ...] = Field(description="Ids of the routes matched, root first")
    ruleset_version: str


class ThirdPartyWait(Record):
    """What a ticket waiting on a third party waits on, and how that party knows it."""

    kind: ThirdPartyWaitKind
    reference: str = Field(
        min_length=1,
        max_length=200,
        description="The third party's own reference: a bug id, a vendor's case, an RMA number",
    )

    def __str__(self) -> str:
        return f"{self.kind.value} {self.reference}"


class TicketLink(Record):
    """The ticket another one was opened beside, and why it was not joined."""

    ticket_id: str = Field(description="The ticket the message named")
    reason: str = Field(description="Why the message opened a ticket of its own")


class TicketState(Record):
    ticket_id: str
    status: TicketStatus
    channel: Channel
    subject: str
    requester: str
    customer_id: str | None = Field(description="None: the sender is an unknown customer")
    parties: tuple[str, ...] = Field(
        default=(),
        description="The customer's people told of the ticket beside the requester: those "
        "in Cc of the opening mail, and those added by a party_added activity",
    )
    opened_at: UtcDatetime
    updated_at: UtcDatetime
    priority: Priority
    category: str
    tier: Tier
    special_routes: tuple[SpecialRoute, ...]
    tags: tuple[str, ...]
    skills: tuple[str, ...] = ()
    customer: CustomerProfile | None = Field(
        default=None, description="The customer's profile when the ticket was last updated"
    )
    assignee: str | None = None
    assigned_at: UtcDatetime | None = Field(default=None, description="When the assignee got it")
    accepted_at: UtcDatetime | None = Field(
        default=None, description="When the assignee accepted it; None: not (yet) accepted"
    )
    priority_since: UtcDatetime | None = Field(
        default=None, description="When the current priority was set"
    )
    status_since: UtcDatetime | None = Field(
        default=None, description="When the current status was entered"
    )
    waiting_on: ThirdPartyWait | None = Field(
        default=None, description="waiting_on_third_party: what the ticket waits on"
    )
    informed_count: int = Field(default=0, ge=0, description="customer_informed activities so far")
    last_informed_at: UtcDatetime | None = Field(
        default=None, description="When the desk last informed the customer"
    )
    last_customer_contact_at: UtcDatetime | None = Field(
        default=None, description="When the customer last wrote (replies count as contact)"
    )
    resolved_at: UtcDatetime | None = None
    time_spent_minutes: int = Field(default=0, ge=0)
    event_count: int = Field(ge=1)
    recent_event_ids: tuple[str, ...] = Field(
        description="The last events applied, newest last; a redelivered one is recognised"
    )
    ruleset_version: str
    alarm: AlarmState | None = Field(default=None, description="SNMP tickets: their alarm")
    requester_failed_checks: tuple[SenderCheck, ...] = Field(
        default=(),
        description="The sender checks the opening mail failed at the relay: its requester "
        "may be forged, and is never sent the acknowledgement",
    )
    linked_to: TicketLink | None = Field(
        default=None,
        description="The ticket a mail named but could not join (its sender is neither a "
        "party of it nor of its customer): this ticket was opened beside it",
    )


class TicketClassifiedData(Record):
    ticket_id: str
    cause_event_id: str
    classification: Classification


class TicketRoutedData(Record):
    ticket_id: str
    cause_event_id: str
    ticket: TicketState
    classification: Classification
    route: RouteDecision


class TicketUpdatedData(Record):
    ticket: TicketState


class RecordLocation(Record):
    """Where a consumed record is on Kafka."""

    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class DeadLetterData(Record):
    reason: str
    field: str | None = Field(description="The bad field, when one is to blame")
    origin: str = Field(description="Channel or topic the input came from")
    payload_base64: str = Field(
        description="The input, whole; only its first bytes when payload_truncated"
    )
    payload_sha256: str = Field(description="SHA-256 of the whole input, truncated or not")
    payload_size: int = Field(ge=0, description="Size of the whole input, in bytes")
    payload_truncated: bool = Field(
        default=False,
        description="The input was too large for a dead letter: payload_base64 holds its "
        "first bytes, and the whole input is at ``original`` (or in the mail archive, by "
        "its SHA-256)",
    )
    original: RecordLocation | None = Field(
        default=None, description="The consumed record the input came from, if any"
    )


class RulesPublishedData(Record):
    version: str
    fingerprint: str = Field(description="version+digest, as stamped on every decision")
    origin: str = Field(description="The file it was published from")
    text: str = Field(description="The rule set's YAML, validated before publishing")
