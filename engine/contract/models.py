"""The records on every topic: one envelope, one data model per kind.

Models are strict, frozen and refuse unknown fields. Records travel as plain JSON;
read them back with :func:`parse_record` (JSON mode, so timestamps and enums parse from
their JSON form under strict validation).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION: Literal[1] = 1


def _to_utc(value: datetime) -> datetime:
    return value if value.tzinfo is UTC else value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class Record(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class Priority(StrEnum):
    """DOMAIN.md priorities; P1 is the most severe."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"

    @property
    def severity(self) -> int:
        """Larger is more severe, so ``max`` picks the most severe."""
        return 4 - int(self.value[1])


class Tier(StrEnum):
    L1 = "L1"
    L2 = "L2"
    L3 = "L3"


class SpecialRoute(StrEnum):
    BUG_TRACKER = "bug_tracker"
    UPSTREAM_BUG = "upstream_bug"
    DEVELOPMENT = "development"
    RMA = "rma"
    VENDOR_REPORT = "vendor_report"
    ENTITLEMENT_NEEDED = "entitlement_needed"


class Channel(StrEnum):
    EMAIL = "email"
    SNMP = "snmp"
    CHAT = "chat"
    PHONE = "phone"


class TicketStatus(StrEnum):
    OPEN = "open"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    RESOLVED = "resolved"


class ActivityType(StrEnum):
    ASSIGNED = "assigned"
    CUSTOMER_INFORMED = "customer_informed"
    NOTE = "note"
    ESCALATED = "escalated"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    TIME_SPENT = "time_spent"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    CUSTOMER_REPLIED = "customer_replied"


class EventKind(StrEnum):
    EMAIL_RECEIVED = "email.received"
    TICKET_CLASSIFIED = "ticket.classified"
    TICKET_ROUTED = "ticket.routed"
    TICKET_UPDATED = "ticket.updated"
    TICKET_ACTIVITY = "ticket.activity"
    SLA_WARNING = "sla.warning"
    SLA_BREACHED = "sla.breached"
    RECORD_DEAD_LETTERED = "record.dead_lettered"
    RULES_PUBLISHED = "rules.published"
    TRAP_RECEIVED = "trap.received"
    SLA_CLOCK_UPDATED = "sla.clock_updated"
    ENTITLEMENT_TOPPED_UP = "entitlement.topped_up"
    ENTITLEMENT_UPDATED = "entitlement.updated"
    CHAT_MESSAGE_RECEIVED = "chat.message.received"
    PHONE_CALL_LOGGED = "phone.call.logged"
    EMAIL_SPOOLED = "email.spooled"


# --- data of each kind ---------------------------------------------------------------


class Attachment(Record):
    filename: str | None
    content_type: str
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ForwardedMail(Record):
    """The original of a forwarded mail (attached as message/rfc822, or inline)."""

    from_address: str
    from_name: str
    subject: str
    date: str = Field(description="The original's date, as the forward shows it")
    text: str = Field(description="What the original says, without its own quoted history")


class EmailReceivedData(Record):
    ticket_id: str
    message_id: str | None = Field(description="Message-ID without angle brackets")
    in_reply_to: str | None
    references: tuple[str, ...]
    mail_from: str = Field(description="SMTP envelope sender (MAIL FROM)")
    rcpt_to: tuple[str, ...] = Field(min_length=1)
    from_address: str
    from_name: str
    subject: str
    text: str = Field(description="The body as text; HTML-only mail converted to text")
    text_truncated: bool
    new_text: str = Field(
        description="What the sender just wrote: the text without quoted history or signature"
    )
    automated_reason: str | None = Field(
        description="Why the mail was sent by a machine (auto-reply, bounce, list); such "
        "mail never opens a ticket and is never answered"
    )
    date: UtcDatetime | None = Field(description="The Date header, when it parses")
    attachments: tuple[Attachment, ...]
    archived_sha256: str | None = Field(
        default=None,
        description="SHA-256 of the whole mail in the mail archive (ENGINE_SMTP_ARCHIVE_DIR)",
    )
    forwarded: ForwardedMail | None = Field(
        default=None, description="The forwarded original, when this mail forwards one"
    )
    peer: str = Field(description="Address of the SMTP client")
    size_bytes: int = Field(ge=0)


class SupportPlan(StrEnum):
    """DOMAIN.md Entitlements: business hours (Mon-Fri 09:00-18:00) or 24x7."""

    BUSINESS_HOURS = "business_hours"
    ALWAYS = "24x7"


class CustomerProfile(Record):
    """The customer fields rules may read, from the customer directory."""

    customer_id: str
    name: str = ""
    language: str | None = None
    timezone: str = "America/Mexico_City"
    plan: SupportPlan = SupportPlan.BUSINESS_HOURS
    version: str | None = None
    modules: tuple[str, ...] = ()


class Varbind(Record):
    oid: str
    name: str | None = Field(default=None, description="MIB name, e.g. IF-MIB::ifIndex")
    value: str | int | float | None
    syntax: str | None = Field(
        default=None, description="SNMP type of the value, e.g. Integer32, OctetString, TimeTicks"
    )
    label: str | None = Field(
        default=None,
        description="The value's meaning when the MIB names it: an enumeration label "
        "(IF-MIB::ifOperStatus 2 -> down) or an OID value's MIB name",
    )


class TrapFacts(Record):
    """The SNMP fields rules may read (filled by the SNMP channel)."""

    oid: str
    name: str | None = Field(default=None, description="MIB name, e.g. IF-MIB::linkDown")
    varbinds: tuple[Varbind, ...] = ()
    device_role: str | None = None


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


class RouteDecision(Record):
    tier: Tier
    special_routes: tuple[SpecialRoute, ...]
    route_path: tuple[str, ...] = Field(description="Ids of the routes matched, root first")
    ruleset_version: str


class AlarmTransition(StrEnum):
    """What a notification says about its alarm."""

    RAISED = "raised"
    CLEARED = "cleared"
    EVENT = "event"
    """A notification with no clearing counterpart (e.g. coldStart): counted, never cleared."""


class AlarmState(Record):
    """An alarm's life on its ticket: storms collapse into occurrences, a clearing
    notification clears it, and too many raise/clear transitions flag it as flapping."""

    key: str = Field(description="device | trap family | affected object")
    occurrences: int = Field(ge=1, description="Notifications received for this alarm")
    first_seen: UtcDatetime
    last_seen: UtcDatetime
    cleared: bool
    cleared_at: UtcDatetime | None
    flapping: bool
    transitions: tuple[UtcDatetime, ...] = Field(
        description="When the alarm last changed between raised and cleared, within the "
        "flapping window, oldest first"
    )


class TicketState(Record):
    ticket_id: str
    status: TicketStatus
    channel: Channel
    subject: str
    requester: str
    customer_id: str | None = Field(description="None: the sender is an unknown customer")
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
    priority_since: UtcDatetime | None = Field(
        default=None, description="When the current priority was set"
    )
    status_since: UtcDatetime | None = Field(
        default=None, description="When the current status was entered"
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


class TicketActivityData(Record):
    """One thing done on a ticket. Agents and tools write it to the ticket events topic; the
    processor applies it and republishes it, with ``customer_id`` and ``ticket`` filled, on
    the ticket activity topic."""

    ticket_id: str
    activity: ActivityType
    actor: str = Field(min_length=1, description="Who did it: an agent, a tool, the customer")
    note: str | None = Field(default=None, description="Free text; the reason of an escalation")
    message: str | None = Field(
        default=None, description="customer_informed: what the customer is told"
    )
    assignee: str | None = Field(default=None, description="assigned: to whom")
    tier: Tier | None = Field(default=None, description="escalated: to which tier")
    minutes: int | None = Field(default=None, ge=0, description="time_spent: minutes worked")
    informed_via: Channel | None = Field(default=None, description="customer_informed: how")
    customer_id: str | None = Field(default=None, description="Filled by the processor")
    ticket: TicketState | None = Field(
        default=None, description="The ticket after the activity; filled by the processor"
    )


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


class DeadLetterData(Record):
    reason: str
    field: str | None = Field(description="The bad field, when one is to blame")
    origin: str = Field(description="Channel or topic the input came from")
    payload_base64: str = Field(description="The input, whole")
    payload_sha256: str
    payload_size: int = Field(ge=0)


class EmailSpooledData(Record):
    ticket_id: str = Field(description="The ticket the mail belongs to, from its headers")
    mail_from: str = Field(description="SMTP envelope sender (MAIL FROM); empty for <>")
    rcpt_to: tuple[str, ...] = Field(min_length=1)
    peer: str = Field(description="Address of the SMTP client")
    size_bytes: int = Field(ge=0)
    sha256: str = Field(description="SHA-256 of the mail, hex")
    archived: bool = Field(description="Whether the mail is kept in ENGINE_SMTP_ARCHIVE_DIR")
    raw_base64: str = Field(description="The mail exactly as received, whole")


class RulesPublishedData(Record):
    version: str
    fingerprint: str = Field(description="version+digest, as stamped on every decision")
    origin: str = Field(description="The file it was published from")
    text: str = Field(description="The rule set's YAML, validated before publishing")


class SnmpVersion(StrEnum):
    V1 = "v1"
    V2C = "v2c"
    V3 = "v3"


class SecurityLevel(StrEnum):
    NO_AUTH_NO_PRIV = "noAuthNoPriv"
    AUTH_NO_PRIV = "authNoPriv"
    AUTH_PRIV = "authPriv"


class NotificationPdu(StrEnum):
    TRAP = "trap"
    INFORM = "inform"


class Device(Record):
    """A monitored device, from the device directory."""

    name: str
    role: str | None = None
    customer_id: str | None = None
    timezone: str | None = None


class TrapReceivedData(Record):
    ticket_id: str = Field(description="Derived from the alarm key: one ticket per alarm")
    alarm_key: str = Field(description="device | trap family | affected object")
    transition: AlarmTransition
    sender: str = Field(description="UDP source address of the notification")
    sender_port: int = Field(ge=0, le=65535)
    agent_address: str | None = Field(
        description="snmpTrapAddress, or a v1 trap's agent-addr: the device behind a relay"
    )
    version: SnmpVersion
    pdu: NotificationPdu
    security_name: str = Field(description="v3 user, or the community's name (never its value)")
    security_level: SecurityLevel
    engine_id: str | None = Field(description="Context engine id, hex (v3)")
    request_id: int
    uptime_hundredths: int | None = Field(description="sysUpTime.0 of the notification")
    trap: TrapFacts = Field(description="Trap OID, MIB names and typed varbinds (RFC 3584 shape)")
    device: Device | None = Field(description="None: the address is not in the device directory")


class ChatMessageReceivedData(Record):
    ticket_id: str = Field(description="Derived from the conversation: one chat, one ticket")
    conversation_id: str = Field(min_length=1, max_length=128)
    message_id: str = Field(min_length=1, max_length=128, description="Unique in its chat")
    sender: str = Field(description="Who wrote it, as the chat widget knows them (e-mail)")
    customer_id: str | None = Field(description="None: an unknown customer")
    text: str


class PhoneCallLoggedData(Record):
    ticket_id: str = Field(description="Derived from the call id")
    call_id: str = Field(min_length=1, max_length=128)
    caller: str = Field(description="Who called: name, number or e-mail")
    customer_id: str | None = Field(description="None: an unknown customer")
    subject: str
    summary: str
    agent: str = Field(description="The agent who took the call")
    suggested_priority: Priority | None = Field(
        description="The agent's own priority; the rules confirm or override it"
    )


# --- envelopes --------------------------------------------------------------------------


class Envelope(Record):
    event_id: str = Field(min_length=1, max_length=256)
    kind: EventKind
    occurred_at: UtcDatetime
    source: str = Field(min_length=1)
    schema_version: Literal[1] = SCHEMA_VERSION
    data: Record


class EmailReceived(Envelope):
    kind: Literal[EventKind.EMAIL_RECEIVED] = EventKind.EMAIL_RECEIVED
    data: EmailReceivedData


class TicketClassified(Envelope):
    kind: Literal[EventKind.TICKET_CLASSIFIED] = EventKind.TICKET_CLASSIFIED
    data: TicketClassifiedData


class TicketRouted(Envelope):
    kind: Literal[EventKind.TICKET_ROUTED] = EventKind.TICKET_ROUTED
    data: TicketRoutedData


class TicketUpdated(Envelope):
    kind: Literal[EventKind.TICKET_UPDATED] = EventKind.TICKET_UPDATED
    data: TicketUpdatedData


class TicketActivity(Envelope):
    kind: Literal[EventKind.TICKET_ACTIVITY] = EventKind.TICKET_ACTIVITY
    data: TicketActivityData


class SlaWarning(Envelope):
    kind: Literal[EventKind.SLA_WARNING] = EventKind.SLA_WARNING
    data: SlaAlertData


class SlaBreached(Envelope):
    kind: Literal[EventKind.SLA_BREACHED] = EventKind.SLA_BREACHED
    data: SlaAlertData


class RecordDeadLettered(Envelope):
    kind: Literal[EventKind.RECORD_DEAD_LETTERED] = EventKind.RECORD_DEAD_LETTERED
    data: DeadLetterData


class RulesPublished(Envelope):
    kind: Literal[EventKind.RULES_PUBLISHED] = EventKind.RULES_PUBLISHED
    data: RulesPublishedData


class TrapReceived(Envelope):
    kind: Literal[EventKind.TRAP_RECEIVED] = EventKind.TRAP_RECEIVED
    data: TrapReceivedData


class SlaClockUpdated(Envelope):
    kind: Literal[EventKind.SLA_CLOCK_UPDATED] = EventKind.SLA_CLOCK_UPDATED
    data: SlaClockData


class EntitlementTopUpData(Record):
    """Prepaid support hours bought by a customer (DOMAIN.md Entitlements)."""

    customer_id: str = Field(min_length=1)
    hours: float = Field(gt=0)
    reference: str = Field(min_length=1, description="Order or invoice: one top-up per reference")
    actor: str = Field(min_length=1)


class EntitlementBalanceData(Record):
    """A customer's support-hours balance: the directory's hours, plus top-ups, minus the
    time spent on their tickets."""

    customer_id: str
    initial_hours: float = Field(ge=0, description="From the customer directory")
    topped_up_hours: float = Field(ge=0)
    spent_minutes: int = Field(ge=0)
    hours_left: float = Field(description="Negative: more time was spent than bought")
    last_ticket_id: str | None = Field(description="The ticket whose time was last deducted")
    recent_event_ids: tuple[str, ...] = Field(
        description="The last events applied, newest last; a redelivered one is recognised"
    )


class EntitlementToppedUp(Envelope):
    kind: Literal[EventKind.ENTITLEMENT_TOPPED_UP] = EventKind.ENTITLEMENT_TOPPED_UP
    data: EntitlementTopUpData


class EntitlementUpdated(Envelope):
    kind: Literal[EventKind.ENTITLEMENT_UPDATED] = EventKind.ENTITLEMENT_UPDATED
    data: EntitlementBalanceData


class ChatMessageReceived(Envelope):
    kind: Literal[EventKind.CHAT_MESSAGE_RECEIVED] = EventKind.CHAT_MESSAGE_RECEIVED
    data: ChatMessageReceivedData


class PhoneCallLogged(Envelope):
    kind: Literal[EventKind.PHONE_CALL_LOGGED] = EventKind.PHONE_CALL_LOGGED
    data: PhoneCallLoggedData


class EmailSpooled(Envelope):
    kind: Literal[EventKind.EMAIL_SPOOLED] = EventKind.EMAIL_SPOOLED
    data: EmailSpooledData


RECORD_TYPES: tuple[type[Envelope], ...] = (
    EmailReceived,
    TicketClassified,
    TicketRouted,
    TicketUpdated,
    TicketActivity,
    SlaWarning,
    SlaBreached,
    RecordDeadLettered,
    RulesPublished,
    TrapReceived,
    SlaClockUpdated,
    EntitlementToppedUp,
    EntitlementUpdated,
    ChatMessageReceived,
    PhoneCallLogged,
    EmailSpooled,
)

# What ingest writes to the ticket events topic; new channels add their envelope here.
IncomingTicketEvent = Annotated[
    EmailReceived | TicketActivity | TrapReceived | ChatMessageReceived | PhoneCallLogged,
    Field(discriminator="kind"),
]
# The events that carry a message to classify (every one but agents' activity).
MessageEvent = EmailReceived | TrapReceived | ChatMessageReceived | PhoneCallLogged
_INCOMING: TypeAdapter[IncomingTicketEvent] = TypeAdapter(IncomingTicketEvent)

AnyRecord = Annotated[
    EmailReceived
    | TicketClassified
    | TicketRouted
    | TicketUpdated
    | TicketActivity
    | SlaWarning
    | SlaBreached
    | RecordDeadLettered
    | RulesPublished
    | TrapReceived
    | SlaClockUpdated
    | EntitlementToppedUp
    | EntitlementUpdated
    | ChatMessageReceived
    | PhoneCallLogged
    | EmailSpooled,
    Field(discriminator="kind"),
]
_ANY_RECORD: TypeAdapter[AnyRecord] = TypeAdapter(AnyRecord)


def parse_record(raw: bytes | str) -> AnyRecord:
    """Parse one record of any topic; raises pydantic.ValidationError naming the bad field."""
    return _ANY_RECORD.validate_json(raw)


def parse_incoming(raw: bytes | str) -> IncomingTicketEvent:
    """Parse one record of the ticket events topic."""
    return _INCOMING.validate_json(raw)


def record_location(location: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A validation error's location within the record: without the ``kind`` that a
    discriminated union puts first ("email.received", "data", "x" -> "data", "x")."""
    if location and location[0] in EventKind._value2member_map_:
        return location[1:]
    return location


def to_json(record: Envelope) -> bytes:
    return record.model_dump_json().encode()
