"""The topic contract: every topic the engine reads or writes, declared once.

Names are versioned; a breaking change of a record gets a new name, never a new meaning
under the old one. Records of one ticket are keyed by the ticket id on every ticket topic,
so they stay ordered and land on the partition that holds that ticket's state.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum

from engine.contract import (
    AgentPresenceChanged,
    ChatMessageReceived,
    EmailReceived,
    EmailSpooled,
    EntitlementToppedUp,
    EntitlementUpdated,
    Envelope,
    EscalationNotified,
    PhoneCallLogged,
    RecordDeadLettered,
    RulesPublished,
    SlaBreached,
    SlaClockUpdated,
    SlaWarning,
    SpecialRoute,
    TicketActivity,
    TicketClassified,
    TicketRouted,
    TicketUpdated,
    Tier,
    TrapReceived,
)

DAY_MS = 24 * 60 * 60 * 1000


class Cleanup(StrEnum):
    DELETE = "delete"
    COMPACT = "compact"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    purpose: str
    records: tuple[type[Envelope], ...]
    partitions: int
    replication_factor: int
    cleanup: Cleanup = Cleanup.DELETE
    retention_ms: int | None = 30 * DAY_MS
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        config = {"cleanup.policy": self.cleanup.value}
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        if self.replication_factor >= 3:
            config["min.insync.replicas"] = "2"
        config.update(self.extra_config)
        return config


TOPIC_PREFIX_VARIABLE = "ENGINE_TOPIC_PREFIX"
_LEGAL_PREFIX = re.compile(r"^[A-Za-z0-9._-]{0,100}$")


def checked_prefix(prefix: str) -> str:
    """A topic prefix as Kafka allows it in a name (letters, digits, ``.``, ``_``, ``-``)."""
    if not _LEGAL_PREFIX.match(prefix):
        raise ValueError(
            f"{TOPIC_PREFIX_VARIABLE}={prefix!r}: use at most 100 letters, digits, '.', '_' or '-'"
        )
    return prefix


# Read once, when the process starts: every topic name below carries it, so one broker can
# hold several engines' topics side by side (integration test modules, staging next to
# production). Consumer groups and faust's internal topics carry it through the app id
# (engine.settings).
PREFIX = checked_prefix(os.environ.get(TOPIC_PREFIX_VARIABLE, ""))

TICKET_EVENTS = PREFIX + "tickets.events.v1"
SNMP_TRAPS = PREFIX + "snmp.traps.v1"
MAIL_SPOOL = PREFIX + "mail.spool.v1"
TICKET_STATE = PREFIX + "tickets.state.v1"
TICKET_DECISIONS = PREFIX + "tickets.decisions.v1"
TICKET_ACTIVITY = PREFIX + "tickets.activity.v1"
SLA_ALERTS = PREFIX + "sla.alerts.v1"
DEAD_LETTERS = PREFIX + "deadletter.v1"
RULES_CONFIG = PREFIX + "config.rules.v1"
RULES_KEY = b"ruleset"
SLA_CLOCKS = PREFIX + "sla.clocks.v1"
ENTITLEMENT_EVENTS = PREFIX + "entitlements.events.v1"
ENTITLEMENT_BALANCES = PREFIX + "entitlements.balances.v1"
AGENTS_PRESENCE = PREFIX + "agents.presence.v1"
ESCALATIONS = PREFIX + "tickets.escalations.v1"

TIER_TOPICS: dict[Tier, str] = {
    tier: PREFIX + f"tickets.routed.{tier.value.lower()}.v1" for tier in Tier
}
SPECIAL_ROUTE_TOPICS: dict[SpecialRoute, str] = {
    route: PREFIX + f"tickets.route.{route.value}.v1" for route in SpecialRoute
}

# A dead letter keeps the whole input, base64-encoded, so it may exceed Kafka's 1 MB default.
DEAD_LETTER_MAX_BYTES = 16 * 1024 * 1024
# What a ticket topic takes: Kafka's default max.message.bytes (1 MiB and 12 bytes), less
# room for the record batch's own overhead.
TICKET_RECORD_MAX_BYTES = 1_000_000
# A spooled mail is the whole mail, base64-encoded: ENGINE_SMTP_MAX_MESSAGE_BYTES stays
# below MAX_SPOOLED_MAIL_BYTES so that it always fits.
MAIL_SPOOL_MAX_BYTES = 16 * 1024 * 1024
MAX_SPOOLED_MAIL_BYTES = 12 * 1024 * 1024

_TIER_PURPOSE = {
    Tier.L1: "Tier 1 queue: general problems",
    Tier.L2: "Tier 2 queue: software failures, special needs, development",
    Tier.L3: "Tier 3 queue: operation-critical and complex cases",
}
_ROUTE_PURPOSE = {
    SpecialRoute.BUG_TRACKER: "Software failures for the bug tracker (ROUTE-BUG)",
    SpecialRoute.UPSTREAM_BUG: "Bugs to record upstream in Asterisk's tracker (ROUTE-UPSTREAM)",
    SpecialRoute.DEVELOPMENT: "Requests for new functionality (ROUTE-DEV)",
    SpecialRoute.RMA: "Hardware faults needing an RMA (ROUTE-RMA)",
    SpecialRoute.VENDOR_REPORT: "Third-party problems: report to the customer (ROUTE-VENDOR)",
    SpecialRoute.ENTITLEMENT_NEEDED: "Customers without support hours left",
}


def declared_topics(
    partitions: int = 6, replication_factor: int = 1, prefix: str | None = None
) -> tuple[TopicSpec, ...]:
    """Every topic; all ticket-keyed topics share ``partitions`` so they stay co-partitioned.
    ``prefix`` names them for another engine than this process's (a test's own topics)."""
    specs = _declared_topics(partitions, replication_factor)
    if prefix is None or prefix == PREFIX:
        return specs
    return tuple(replace(spec, name=named(spec.name, prefix)) for spec in specs)


def named(topic: str, prefix: str) -> str:
    """``topic`` (a name of this process's) as an engine with ``prefix`` names it."""
    return checked_prefix(prefix) + topic.removeprefix(PREFIX)


def _declared_topics(partitions: int, replication_factor: int) -> tuple[TopicSpec, ...]:

    def ticket_topic(
        name: str,
        purpose: str,
        *records: type[Envelope],
        cleanup: Cleanup = Cleanup.DELETE,
        retention_ms: int | None = 30 * DAY_MS,
    ) -> TopicSpec:
        return TopicSpec(
            name, purpose, records, partitions, replication_factor, cleanup, retention_ms
        )

    return (
        ticket_topic(
            TICKET_EVENTS,
            "Raw facts from every channel (e-mail, SNMP, chat, phone) and agents' activity "
            "(API, entitlements ledger), keyed by ticket id",
            EmailReceived,
            TrapReceived,
            ChatMessageReceived,
            PhoneCallLogged,
            TicketActivity,
        ),
        ticket_topic(
            SNMP_TRAPS,
            "Every SNMP notification the receiver accepted, one record each, keyed by ticket "
            "id: the audit of a storm, which tickets.events.v1 carries folded",
            TrapReceived,
        ),
        TopicSpec(
            MAIL_SPOOL,
            "Every mail the SMTP ingestor accepted, whole, keyed by ticket id: the mail "
            "parser turns each into an email.received event or a dead letter",
            (EmailSpooled,),
            partitions,
            replication_factor,
            retention_ms=7 * DAY_MS,
            extra_config={"max.message.bytes": str(MAIL_SPOOL_MAX_BYTES)},
        ),
        ticket_topic(
            TICKET_STATE,
            "Latest state of every ticket (the processor's table changelog)",
            TicketUpdated,
            cleanup=Cleanup.COMPACT,
            retention_ms=None,
        ),
        ticket_topic(
            TICKET_DECISIONS,
            "Every classification, with the rules that fired and the ruleset version",
            TicketClassified,
        ),
        *(
            ticket_topic(topic, _TIER_PURPOSE[tier], TicketRouted)
            for tier, topic in TIER_TOPICS.items()
        ),
        *(
            ticket_topic(topic, _ROUTE_PURPOSE[route], TicketRouted)
            for route, topic in SPECIAL_ROUTE_TOPICS.items()
        ),
        ticket_topic(
            TICKET_ACTIVITY,
            "What workers and agents did: assigned, informed, escalated, resolved...",
            TicketActivity,
        ),
        ticket_topic(
            SLA_ALERTS, "Update-obligation warnings and breaches", SlaWarning, SlaBreached
        ),
        ticket_topic(
            ESCALATIONS,
            "Steps of the escalation matrix taken: who was told about a ticket not accepted "
            "or not updated in time, once per dedup key (the tier workers)",
            EscalationNotified,
        ),
        ticket_topic(
            SLA_CLOCKS,
            "Armed update obligations of open tickets and the alerts sent (the SLA worker's "
            "table changelog)",
            SlaClockUpdated,
            cleanup=Cleanup.COMPACT,
            retention_ms=None,
        ),
        ticket_topic(
            ENTITLEMENT_EVENTS,
            "Support hours bought (top-ups), keyed by customer id",
            EntitlementToppedUp,
            retention_ms=365 * DAY_MS,
        ),
        ticket_topic(
            ENTITLEMENT_BALANCES,
            "Support-hours balance of every customer, keyed by customer id",
            EntitlementUpdated,
            cleanup=Cleanup.COMPACT,
            retention_ms=None,
        ),
        TopicSpec(
            DEAD_LETTERS,
            "Input that could not be parsed or processed, kept whole with the reason",
            (RecordDeadLettered,),
            partitions=1,
            replication_factor=replication_factor,
            retention_ms=90 * DAY_MS,
            extra_config={"max.message.bytes": str(DEAD_LETTER_MAX_BYTES)},
        ),
        TopicSpec(
            AGENTS_PRESENCE,
            "Each agent's presence (available, away, signed out), keyed by agent id; one "
            "partition, whose holder in the tier workers' group is the one that assigns",
            (AgentPresenceChanged,),
            partitions=1,
            replication_factor=replication_factor,
            cleanup=Cleanup.COMPACT,
            retention_ms=None,
        ),
        TopicSpec(
            RULES_CONFIG,
            "The published rule set; every processor follows it (engine rules publish)",
            (RulesPublished,),
            partitions=1,
            replication_factor=replication_factor,
            cleanup=Cleanup.COMPACT,
            retention_ms=None,
        ),
    )
