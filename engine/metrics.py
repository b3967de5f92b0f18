"""Prometheus metrics: every metric of the engine is declared here, and nowhere else.

Label values are bounded: never a ticket id, address or subject. Each label takes the
members of one enum, declared beside its metric (or the contract's own enum, such as
Tier), and ``LABELS`` at the end binds every label of every metric to its enum;
tests/unit/test_metrics.py checks both rules. Pass enum members to ``.labels()``: a
StrEnum is exposed as its value.
"""

from __future__ import annotations

import os
from enum import Enum, StrEnum
from http import HTTPStatus
from importlib import metadata
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.metrics import MetricWrapperBase

from engine.contract import (
    Channel,
    EventKind,
    Priority,
    SpecialRoute,
    Standing,
    TicketStatus,
    Tier,
)
from engine.contract.escalation import EscalationReason, EscalationRole, Handover
from engine.contract.topics import declared_topics


class IngestSource(StrEnum):
    """Where an input came in: the ingestor (e-mail, SNMP) or the API route."""

    EMAIL = "email"
    SNMP = "snmp"
    CHAT = "chat"
    PHONE = "phone"
    ACTIVITY = "activity"


class IngestOutcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    SPOOLED = "spooled"
    DEAD_LETTERED = "dead_lettered"


class IngestReason(StrEnum):
    """Why an input was rejected or spooled; for an accepted SNMP input, its PDU type."""

    NONE = ""
    TRAP = "trap"
    INFORM = "inform"
    # both ingestors
    KAFKA_UNAVAILABLE = "kafka_unavailable"
    INTERNAL_ERROR = "internal_error"
    # SMTP
    RATE_LIMITED = "rate_limited"
    RELAY_DENIED = "relay_denied"
    HEADER_TOO_LARGE = "header_too_large"
    ARCHIVE_UNAVAILABLE = "archive_unavailable"
    AUTH_FAILED = "auth_failed"  # a connection closed at its third failed AUTH
    XFORWARD_DENIED = "xforward_denied"  # XFORWARD from a client not trusted to send it
    BAD_SENDER = "bad_sender"  # MAIL FROM that is not one address (control characters...)
    # SNMP: the receiver's own refusals
    OVERLOADED = "overloaded"
    UNUSABLE = "unusable"
    AUTH_PRIV_REQUIRED = "auth_priv_required"
    SECURITY_LEVEL_TOO_LOW = "security_level_too_low"
    BEHIND_SPOOL = "behind_spool"
    SPOOL_FULL = "spool_full"
    SPOOL_WRITE_ERROR = "spool_write_error"
    OID_LIMIT = "oid_limit"  # an OID of over 128 arcs, or an arc over 2^32-1
    NUMBER_LIMIT = "number_limit"  # an integer value outside SNMP's 64 bits
    UNDECODABLE = "undecodable"  # a decoder (the fast path, pysnmp, pyasn1) raised
    # SNMP: pysnmp's refusal counters (pysnmp_adapter.ENGINE_COUNTERS)
    BAD_COMMUNITY = "bad_community"
    BAD_VERSION = "bad_version"
    MALFORMED = "malformed"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_SECURITY_MODEL = "unknown_security_model"
    UNKNOWN_USER = "unknown_user"
    WRONG_DIGEST = "wrong_digest"
    UNSUPPORTED_SECURITY_LEVEL = "unsupported_security_level"
    DECRYPTION_ERROR = "decryption_error"
    UNKNOWN_ENGINE_ID = "unknown_engine_id"
    NOT_IN_TIME_WINDOW = "not_in_time_window"


EVENTS_INGESTED = Counter(
    "ticketing_events_ingested_total",
    "Inputs received by the ingestors, by source and outcome",
    ["source", "outcome", "reason"],
)
INGEST_ACK_SECONDS = Histogram(
    "ticketing_ingest_kafka_ack_seconds",
    "Time from an input's arrival to Kafka's acknowledgement of its event",
    ["source"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class MailOutcome(StrEnum):
    PARSED = "parsed"
    DEAD_LETTERED = "dead_lettered"


MAILS_PARSED = Counter(
    "ticketing_mails_parsed_total",
    "Spooled mails the mail parser read, by outcome (parsed, dead_lettered)",
    ["outcome"],
)
MAIL_PARSER_PARTITIONS = Gauge(
    "ticketing_mail_parser_assigned_partitions",
    "Partitions of the mail spool this mail parser owns (0: not reading yet)",
)
SPOOL_TO_EVENT_SECONDS = Histogram(
    "ticketing_mail_spool_to_event_seconds",
    "Time from a mail's spooling (its 250) to Kafka's acknowledgement of its event",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
TICKETS_ROUTED = Counter(
    "ticketing_tickets_routed_total",
    "Tickets routed to a tier topic, by tier and priority",
    ["tier", "priority"],
)
SPECIAL_ROUTES = Counter(
    "ticketing_special_routes_total",
    "Tickets sent to a special route",
    ["route"],
)


class ProcessorOutcome(StrEnum):
    PROCESSED = "processed"
    SUPPRESSED = "suppressed"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
    DEAD_LETTERED = "dead_lettered"
    LINKED = "linked"
    """A mail whose sender may not join the ticket it named, put back under its own."""


EVENTS_PROCESSED = Counter(
    "ticketing_processor_events_total",
    "Ticket events seen by the processor, by outcome",
    ["outcome"],
)
ASSIGNED_PARTITIONS = Gauge(
    "ticketing_processor_assigned_partitions",
    "Partitions of the ticket events topic this processor owns (0: not consuming yet)",
)
TABLE_ROWS_RESTORED = Counter(
    "ticketing_table_rows_restored_total",
    "Changelog records read back into this process's table since it started (the "
    "processor's tickets: every state record with the memory store, only those past the "
    "local copy with rocksdict)",
)
TABLE_ROWS_RESTORED_IN_BULK = Counter(
    "ticketing_table_rows_restored_in_bulk_total",
    "Of the changelog records read back, those read by the bulk reader of a local copy far "
    "behind its changelog (rocksdict), before faust's own recovery",
)
SKIPPED_RECORDS_READ_AGAIN = Counter(
    "ticketing_skipped_records_read_again_total",
    "Records of tickets.events.v1 the processor's faust stream skipped after a rebalance, "
    "read from Kafka and handled in their place",
)
RULESET_SWITCHES = Counter(
    "ticketing_ruleset_switches_total",
    "Times a processor switched to a newly published rule set",
)
INGEST_TO_ROUTED_SECONDS = Histogram(
    "ticketing_ingest_to_routed_seconds",
    "Time from an event's ingestion to its ticket being routed",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)


class ApiMethod(StrEnum):
    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    OPTIONS = "OPTIONS"
    CONNECT = "CONNECT"
    TRACE = "TRACE"
    OTHER = "other"  # an extension method (WebDAV's and the like)


class ApiRoute(StrEnum):
    """The API's route templates (engine.api.app registers exactly these)."""

    CHAT_MESSAGES = "/chat/conversations/{conversation_id}/messages"
    CHAT_SOCKET = "/chat/conversations/{conversation_id}/ws"
    PHONE_CALLS = "/phone/calls"
    TICKET_ACTIVITY = "/tickets/{ticket_id}/activity"
    TICKET = "/tickets/{ticket_id}"
    TICKETS = "/tickets"
    HEALTH = "/health"
    AGENT_PRESENCE = "/agents/{agent_id}/presence"
    AGENT_QUEUE = "/agents/{agent_id}/queue"
    QUEUES = "/queues"
    OPENAPI = "/openapi.json"
    WALLBOARD = "/wallboard"
    WALLBOARD_SCRIPT = "/wallboard/wallboard.js"
    WALLBOARD_STYLE = "/wallboard/wallboard.css"
    WALLBOARD_STATE = "/wallboard/state"
    WALLBOARD_EVENTS = "/wallboard/events"
    UNMATCHED = "unmatched"


API_REQUESTS = Counter(
    "ticketing_api_requests_total",
    "HTTP API requests, by method, route template and status",
    ["method", "route", "status"],
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> int:
    """Serve /metrics on ``port`` (0: any free port), with the build's info; returns the
    port."""
    announce_build(configured_ruleset_version())
    start_at_zero()
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_address[1])


def start_at_zero() -> None:
    """Series an alert takes the increase of exist from the start, at 0: ``increase()``
    needs two samples, so a counter born at its first event would hide that event."""
    for component in Component:
        for kind in DeadLetterReason:
            DEAD_LETTERS.labels(component, kind)
    for dropped in SpoolDropReason:
        SNMP_SPOOL_DROPPED.labels(dropped)


def engine_version() -> str:
    try:
        return metadata.version("ticketing-engine")
    except metadata.PackageNotFoundError:
        return "unknown"


def configured_ruleset_version() -> str:
    """The version of the rule set this process starts with (``ENGINE_RULES_FILE`` or the
    shipped one), read from its ``version`` key alone."""
    path = os.environ.get("ENGINE_RULES_FILE") or str(SHIPPED_RULES)
    try:
        with open(path, encoding="utf-8") as rules:
            for line in rules:
                if line.startswith("version:"):
                    return line.partition(":")[2].strip().strip("\"'")
    except OSError:
        pass
    return "unknown"


def announce_build(ruleset: str) -> None:
    """``ticketing_build_info``: 1 for this engine version and the rule set in use."""
    BUILD_INFO.info({"version": engine_version(), "ruleset": ruleset})


class DeadLetterReason(StrEnum):
    """What kind of problem a dead letter's reason names (the reason itself is on the record)."""

    INVALID = "invalid"  # not a valid record, event, state, notification or mail
    REFUSED = "refused"  # an activity the ticket refuses; a notice the relay refused
    TOO_LARGE = "too_large"
    FAILED = "failed"  # processing raised
    OTHER = "other"


_DEAD_LETTER_REASONS = (
    (("not a valid", "not a usable", "notification could not be used", "mail could not be parsed"),
     DeadLetterReason.INVALID),
    (("activity refused", "relay refused"), DeadLetterReason.REFUSED),
    (("processing failed",), DeadLetterReason.FAILED),
)  # fmt: skip


def dead_letter_reason(reason: str) -> DeadLetterReason:
    if "bytes, over" in reason or "too large" in reason:
        return DeadLetterReason.TOO_LARGE
    return next(
        (kind for prefixes, kind in _DEAD_LETTER_REASONS if reason.startswith(prefixes)),
        DeadLetterReason.OTHER,
    )


class UpdateOutcome(StrEnum):
    ON_TIME = "on_time"
    LATE = "late"  # after the update's deadline was breached


class Component(StrEnum):
    """The engine's processes, as a label (dead letters, consumer groups)."""

    SMTP = "smtp"
    MAIL_PARSER = "mail_parser"
    PROCESSOR = "processor"
    NOTIFIER = "notifier"
    API = "api"
    SNMP = "snmp"
    SLA = "sla"
    ENTITLEMENTS = "entitlements"
    WORKERS = "workers"
    RULES = "rules"
    OTHER = "other"


_COMPONENT_OF_SOURCE = (
    ("engine.notifier", Component.NOTIFIER),
    ("engine.entitlements", Component.ENTITLEMENTS),
    ("engine.processor", Component.PROCESSOR),
    ("engine.rules", Component.RULES),
    ("engine.sla", Component.SLA),
    ("engine.workers", Component.WORKERS),
    ("engine.api", Component.API),
    ("mail-parser", Component.MAIL_PARSER),
    ("snmp", Component.SNMP),
    ("smtp", Component.SMTP),
)


def component_of_source(source: str) -> Component:
    """The component behind a record's ``source`` (``engine.sla``, ``snmp://host:port``)."""
    return next(
        (component for prefix, component in _COMPONENT_OF_SOURCE if source.startswith(prefix)),
        Component.OTHER,
    )


TopicName = StrEnum(  # type: ignore[misc]
    "TopicName",
    {spec.name.upper().replace(".", "_"): spec.name for spec in declared_topics(prefix="")},
)


SHIPPED_RULES = Path(__file__).parent / "rules" / "default.yaml"
BUILD_INFO = Info(
    "ticketing_build",
    "The engine's version and the version of the rule set in use (ticketing_build_info)",
)
OPEN_TICKETS = Gauge(
    "ticketing_open_tickets",
    "Tickets not resolved, by tier, priority and status (the API's ticket view)",
    ["tier", "priority", "status"],
)
SLA_DUE_SOON = Gauge(
    "ticketing_sla_due_soon",
    "Open tickets whose customer update is due soon (warned, not informed since), by priority",
    ["priority"],
)
SLA_IN_BREACH = Gauge(
    "ticketing_sla_in_breach",
    "Open tickets whose customer update is overdue (breached, not informed since), by priority",
    ["priority"],
)
SLA_UPDATES = Counter(
    "ticketing_sla_updates_total",
    "Customer updates recorded, on time or after their deadline was breached, by priority",
    ["priority", "outcome"],
)
TIME_TO_FIRST_RESPONSE_SECONDS = Histogram(
    "ticketing_time_to_first_response_seconds",
    "From a ticket's opening to the desk's first update to the customer",
    ["priority", "channel"],
    buckets=(60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 24 * 3600, 72 * 3600),
)
TIME_TO_RESOLVE_SECONDS = Histogram(
    "ticketing_time_to_resolve_seconds",
    "From a ticket's opening to its resolution",
    ["priority", "channel"],
    buckets=(300, 1800, 3600, 4 * 3600, 8 * 3600, 24 * 3600, 72 * 3600, 7 * 24 * 3600),
)
DEAD_LETTERS = Counter(
    "ticketing_dead_letters_total",
    "Dead letters made, by the component that made them and the kind of reason",
    ["origin", "reason"],
)
CONSUMER_LAG = Gauge(
    "ticketing_consumer_lag",
    "Records of a topic not yet consumed by an engine consumer group: end offsets less "
    "committed offsets, summed over partitions",
    ["group", "topic"],
)
UDP_RCVBUF_ERRORS = Gauge(
    "ticketing_udp_rcvbuf_errors",
    "The kernel's Udp RcvbufErrors (/proc/net/snmp): datagrams any UDP socket of the host "
    "dropped because its receive buffer was full, since boot",
)
SNMP_SOCKET_DROPS = Gauge(
    "ticketing_snmp_socket_drops",
    "Datagrams the kernel dropped for the SNMP receiver's own socket (/proc/net/udp)",
)
SNMP_RECEIVE_BUFFER_BYTES = Gauge(
    "ticketing_snmp_receive_buffer_bytes",
    "The SNMP receiver socket's receive buffer as the kernel granted it (SO_RCVBUF)",
)

SNMP_TRAPS_FOLDED = Counter(
    "ticketing_snmp_traps_folded_total",
    "Notifications folded into another of their alarm's ticket event (a storm): each is "
    "still on snmp.traps.v1 and counted in its alarm's occurrences",
)
SNMP_FOLDS_OPEN = Gauge(
    "ticketing_snmp_folds_open",
    "Alarms whose notifications are being folded now (a storm in progress)",
)


class HoldReason(StrEnum):
    """Why the SNMP receiver spooled an event instead of publishing it."""

    KAFKA_UNAVAILABLE = "kafka_unavailable"
    BEHIND_SPOOL = "behind_spool"


SNMP_SPOOLED = Counter(
    "ticketing_snmp_spooled_total",
    "trap.received events written to the local trap spool, by why (kafka_unavailable: "
    "Kafka did not take them; behind_spool: an older event of their ticket waits there)",
    ["reason"],
)
SNMP_SPOOL_REPLAYED = Counter(
    "ticketing_snmp_spool_replayed_total",
    "Spooled trap.received events Kafka acknowledged, then removed from the spool",
)


class SpoolDropReason(StrEnum):
    FULL = "full"
    WRITE_ERROR = "write_error"
    TORN = "torn"


SNMP_SPOOL_DROPPED = Counter(
    "ticketing_snmp_spool_dropped_total",
    "trap.received events lost to the spool, by reason (full: over ENGINE_SNMP_SPOOL_MAX_BYTES, "
    "the newest dropped; write_error: the disk refused them; torn: a record cut by a crash)",
    ["reason"],
)
SNMP_SPOOL_RECORDS = Gauge(
    "ticketing_snmp_spool_records",
    "trap.received events in the local spool waiting for Kafka",
)
SNMP_SPOOL_BYTES = Gauge(
    "ticketing_snmp_spool_bytes",
    "Bytes of the local trap spool's segment files",
)


class NoticeKind(StrEnum):
    ACKNOWLEDGEMENT = "acknowledgement"
    UPDATE = "update"
    ESCALATION = "escalation"
    ASSIGNMENT = "assignment"
    UNKNOWN = "unknown"  # its record could not even tell which


class NoticeOutcome(StrEnum):
    SENT = "sent"
    REFUSED = "refused"
    UNBUILDABLE = "unbuildable"  # dead-lettered: the notice could not be built
    REPEATED = "repeated"  # not sent: this process sent that Message-ID already


NOTICES = Counter("ticketing_notices_total", "Customer notices, by outcome", ["kind", "outcome"])


class AckWithheld(StrEnum):
    """Why an acknowledgement was not sent (it would be backscatter)."""

    SENDER_FAILED_CHECKS = "sender_failed_checks"  # the relay stamped SPF/DMARC fail
    UNKNOWN_SENDER = "unknown_sender"  # ENGINE_NOTIFY_ACK_UNKNOWN_SENDERS=false


ACKS_WITHHELD = Counter(
    "ticketing_acknowledgements_withheld_total",
    "Acknowledgements not sent to the mail's sender, by reason",
    ["reason"],
)

WITHOUT_HOURS = Gauge(
    "ticketing_customers_without_hours",
    "Customers with a metered balance and no support hours left, as the processor knows",
)


class SlaObligation(StrEnum):
    """The update obligations (sla.obligations.obligation_name: one per priority)."""

    UPD_P1 = "UPD-P1"
    UPD_P2 = "UPD-P2"
    UPD_P3 = "UPD-P3"
    UPD_P4 = "UPD-P4"


SLA_ALERTS_EMITTED = Counter(
    "ticketing_sla_alerts_total", "SLA alerts emitted", ["kind", "obligation"]
)
SLA_ALERTS_READ_BACK = Counter(
    "ticketing_sla_alerts_read_back_total",
    "Tickets whose rows counted alerts a partition's previous owner sent without recording "
    "them (read back from sla.alerts.v1 when the partition was taken over)",
)
SLA_ARMED = Gauge("ticketing_sla_armed_obligations", "Armed obligations in the owned partitions")
SLA_PARTITIONS = Gauge("ticketing_sla_assigned_partitions", "Partitions of tickets.state.v1 owned")
SLA_ROWS = Gauge("ticketing_sla_table_rows", "Rows of the sla-clocks table held in memory")
SLA_ROWS_DELETED = Counter(
    "ticketing_sla_rows_deleted_total", "Rows of resolved tickets deleted (tombstones)"
)

# --- tier workers (engine workers) ---------------------------------------------------------


WAITING_TICKETS = Gauge(
    "ticketing_waiting_tickets",
    "Open tickets nobody has, by tier and priority (the tier workers' queues)",
    ["tier", "priority"],
)
OLDEST_WAITING_SECONDS = Gauge(
    "ticketing_oldest_waiting_seconds",
    "Age of the oldest ticket nobody has, by tier (0: none waits)",
    ["tier"],
)
AGENTS = Gauge("ticketing_agents", "Agents of the directory, by standing", ["standing"])
ASSIGNMENTS = Counter(
    "ticketing_assignments_total",
    "Tickets assigned by the tier workers, by tier and priority",
    ["tier", "priority"],
)
TIME_TO_ASSIGN_SECONDS = Histogram(
    "ticketing_time_to_assign_seconds",
    "From a ticket's opening to the tier workers' assignment, by priority",
    ["priority"],
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)
TIME_TO_ACCEPT_SECONDS = Histogram(
    "ticketing_time_to_accept_seconds",
    "From an assignment to the assignee's acceptance, by priority",
    ["priority"],
    buckets=(15, 60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600),
)
REASSIGNMENTS = Counter(
    "ticketing_reassignments_total",
    "Tickets the tier workers took from an assignee who had not accepted them, by reason",
    ["reason"],
)
ESCALATIONS = Counter(
    "ticketing_escalations_total",
    "Escalation steps told (escalation.notified records), by reason and role",
    ["reason", "role"],
)
ENTITLEMENTS_LEADING = Gauge(
    "ticketing_entitlements_leading",
    "1 when this entitlements process holds the ledger's lease and keeps the ledger, else 0",
)
WORKERS_LEADING = Gauge(
    "ticketing_workers_leading",
    "1 when this tier worker holds the assignment lease (one in the group does), else 0",
)

# Every label of every metric above, with the enum its values come from (in label order).
LABELS: dict[MetricWrapperBase, dict[str, type[Enum]]] = {
    EVENTS_INGESTED: {"source": IngestSource, "outcome": IngestOutcome, "reason": IngestReason},
    INGEST_ACK_SECONDS: {"source": IngestSource},
    MAILS_PARSED: {"outcome": MailOutcome},
    TICKETS_ROUTED: {"tier": Tier, "priority": Priority},
    SPECIAL_ROUTES: {"route": SpecialRoute},
    EVENTS_PROCESSED: {"outcome": ProcessorOutcome},
    API_REQUESTS: {"method": ApiMethod, "route": ApiRoute, "status": HTTPStatus},
    SNMP_SPOOLED: {"reason": HoldReason},
    SNMP_SPOOL_DROPPED: {"reason": SpoolDropReason},
    NOTICES: {"kind": NoticeKind, "outcome": NoticeOutcome},
    ACKS_WITHHELD: {"reason": AckWithheld},
    SLA_ALERTS_EMITTED: {"kind": EventKind, "obligation": SlaObligation},
    WAITING_TICKETS: {"tier": Tier, "priority": Priority},
    OLDEST_WAITING_SECONDS: {"tier": Tier},
    AGENTS: {"standing": Standing},
    ASSIGNMENTS: {"tier": Tier, "priority": Priority},
    TIME_TO_ASSIGN_SECONDS: {"priority": Priority},
    TIME_TO_ACCEPT_SECONDS: {"priority": Priority},
    OPEN_TICKETS: {"tier": Tier, "priority": Priority, "status": TicketStatus},
    SLA_DUE_SOON: {"priority": Priority},
    SLA_IN_BREACH: {"priority": Priority},
    SLA_UPDATES: {"priority": Priority, "outcome": UpdateOutcome},
    TIME_TO_FIRST_RESPONSE_SECONDS: {"priority": Priority, "channel": Channel},
    TIME_TO_RESOLVE_SECONDS: {"priority": Priority, "channel": Channel},
    DEAD_LETTERS: {"origin": Component, "reason": DeadLetterReason},
    CONSUMER_LAG: {"group": Component, "topic": TopicName},
    REASSIGNMENTS: {"reason": Handover},
    ESCALATIONS: {"reason": EscalationReason, "role": EscalationRole},
}
