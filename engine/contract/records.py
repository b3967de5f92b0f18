"""One envelope for every record: the kinds on the topics, and how to parse them back."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from engine.contract.activity import (
    AgentPresenceData,
    ChatMessageReceivedData,
    PhoneCallLoggedData,
    TicketActivityData,
)
from engine.contract.base import SCHEMA_VERSION, EventKind, Record, UtcDatetime
from engine.contract.email import EmailReceivedData, EmailSpooledData
from engine.contract.entitlements import EntitlementBalanceData, EntitlementTopUpData
from engine.contract.escalation import EscalationData
from engine.contract.sla import SlaAlertData, SlaClockData
from engine.contract.ticket import (
    DeadLetterData,
    RulesPublishedData,
    TicketClassifiedData,
    TicketRoutedData,
    TicketUpdatedData,
)
from engine.contract.trap import TrapReceivedData


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


class AgentPresenceChanged(Envelope):
    kind: Literal[EventKind.AGENT_PRESENCE_CHANGED] = EventKind.AGENT_PRESENCE_CHANGED
    data: AgentPresenceData


class EscalationNotified(Envelope):
    kind: Literal[EventKind.ESCALATION_NOTIFIED] = EventKind.ESCALATION_NOTIFIED
    data: EscalationData


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
    AgentPresenceChanged,
    EscalationNotified,
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
    | EmailSpooled
    | AgentPresenceChanged
    | EscalationNotified,
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
