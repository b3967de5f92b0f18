"""The envelope's building blocks: strict frozen records, aware UTC times, shared enums."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict

SCHEMA_VERSION: Literal[1] = 1


def _to_utc(value: datetime) -> datetime:
    return value if value.tzinfo is UTC else value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown IANA time zone {value!r}") from error
    return value


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]
"""An IANA time zone's name (``America/Mexico_City``), checked against the zone database."""


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


class SenderCheck(StrEnum):
    """A check of a mail's sender that the relay in front of the engine stamped on it
    (``Authentication-Results:``, ``Received-SPF:``)."""

    SPF = "spf"
    DMARC = "dmarc"


class TicketStatus(StrEnum):
    OPEN = "open"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    WAITING_ON_THIRD_PARTY = "waiting_on_third_party"
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
    REPRIORITIZED = "reprioritized"
    ACCEPTED = "accepted"
    UNASSIGNED = "unassigned"
    PARTY_ADDED = "party_added"
    PARTY_REMOVED = "party_removed"
    WAITING_ON_THIRD_PARTY = "waiting_on_third_party"
    THIRD_PARTY_ANSWERED = "third_party_answered"


class ThirdPartyWaitKind(StrEnum):
    """What a ticket waits on outside the desk (DOMAIN.md ROUTE-UPSTREAM, ROUTE-VENDOR,
    ROUTE-RMA)."""

    UPSTREAM_FIX = "upstream_fix"
    VENDOR = "vendor"
    RMA = "rma"
    OTHER = "other"


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
    AGENT_PRESENCE_CHANGED = "agent.presence_changed"
    ESCALATION_NOTIFIED = "escalation.notified"


class Presence(StrEnum):
    """Whether an agent takes work now: signed in and available, away, or signed out."""

    AVAILABLE = "available"
    AWAY = "away"
    SIGNED_OUT = "signed_out"


class Standing(StrEnum):
    """Whether an agent can take a ticket now, and if not, why (the tier workers)."""

    ABLE = "able"
    AWAY = "away"
    SIGNED_OUT = "signed out"
    OFF_HOURS = "outside working hours"
    AT_CAPACITY = "at capacity"


class SupportPlan(StrEnum):
    """DOMAIN.md Entitlements: business hours (Mon-Fri 09:00-18:00) or 24x7."""

    BUSINESS_HOURS = "business_hours"
    ALWAYS = "24x7"
