"""Prometheus metrics. Label values are bounded: never a ticket id, address or subject."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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
EVENTS_PROCESSED = Counter(
    "ticketing_processor_events_total",
    "Ticket events seen by the processor, by outcome",
    ["outcome"],
)
ASSIGNED_PARTITIONS = Gauge(
    "ticketing_processor_assigned_partitions",
    "Partitions of the ticket events topic this processor owns (0: not consuming yet)",
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

API_REQUESTS = Counter(
    "ticketing_api_requests_total",
    "HTTP API requests, by method, route template and status",
    ["method", "route", "status"],
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> int:
    """Serve /metrics on ``port`` (0: any free port); returns the port."""
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_address[1])


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
