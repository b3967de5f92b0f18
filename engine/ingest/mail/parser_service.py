"""``engine mail-parser``: reads the mail spool into ticket events, as a process.

Each spooled mail becomes its ``email.received`` event on ``tickets.events.v1`` (keyed by
the ticket it was spooled under, so a ticket's mails keep their order), or a dead letter
with the reason. Offsets are committed only after Kafka acknowledged every output of the
batch; when it does not, the batch is read again after a pause (``engine.kafka.loop``).
A mail may so be read twice, into the same event id: the processor's outcome is the same
(DESIGN.md).

No mail stops a partition: a mail's parse is bounded (``engine.ingest.mail.parse``: a
mail past a bound or its time budget is dead-lettered with the reason), a batch is small
enough that even mails that each use their whole budget are done within the consumer's
poll interval, and a dead letter too large for its topic keeps the first bytes of its
input and names the spool record that still holds it whole.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from engine import metrics
from engine.clock import Clock, SystemClock
from engine.contract import EmailReceived, RecordLocation, to_json
from engine.contract.topics import (
    DEAD_LETTER_MAX_BYTES,
    DEAD_LETTERS,
    MAIL_SPOOL,
    MAIL_SPOOL_MAX_BYTES,
    TICKET_EVENTS,
    TICKET_RECORD_MAX_BYTES,
)
from engine.ingest.mail.parse import PARSE_BUDGET_SECONDS
from engine.ingest.mail.spool import read_spooled
from engine.kafka.consumer import new_consumer
from engine.kafka.deadletter import dead_letter, location_of
from engine.kafka.loop import BatchHandler, ConsumeLoop
from engine.kafka.producer import Producer, new_producer
from engine.outage_log import bootstrap_servers, wait_until_kafka_answers
from engine.process import StopSignal, configure_logging
from engine.settings import Settings

log = logging.getLogger(__name__)

Output = tuple[str, bytes, bytes]
# Mails read per batch: even if each used its whole parse budget, the batch is done well
# within the consumer's poll interval (past it, the partition would go to another
# consumer, which would read the same mails again).
BATCH_MAILS = 50
POLL_INTERVAL_MS = int((BATCH_MAILS * PARSE_BUDGET_SECONDS + 300) * 1000)


def outputs_of(
    values: Sequence[bytes],
    clock: Clock,
    locations: Sequence[RecordLocation | None] | None = None,
) -> tuple[list[Output], list[str]]:
    """What to publish for these spool records (at ``locations`` on the spool, when
    known), in their order, and each one's outcome."""
    outputs: list[Output] = []
    outcomes: list[str] = []
    where = locations if locations is not None else [None] * len(values)
    for value, original in zip(values, where, strict=True):
        read = read_spooled(value, clock.now(), original)
        if isinstance(read, EmailReceived):
            event = to_json(read)
            if len(event) <= TICKET_RECORD_MAX_BYTES:
                outputs.append((TICKET_EVENTS, read.data.ticket_id.encode(), event))
                outcomes.append("parsed")
                continue
            read = dead_letter(
                value,
                reason=f"the mail's event is {len(event):,} bytes, over the "
                f"{TICKET_RECORD_MAX_BYTES:,} a ticket topic takes",
                field=None,
                origin=MAIL_SPOOL,
                source="mail-parser",
                now=clock.now(),
                original=original,
            )
        key = read.data.payload_sha256.encode()
        outputs.append((DEAD_LETTERS, key, to_json(read)))
        outcomes.append("dead_lettered")
    return outputs, outcomes


class _ParsesMail(BatchHandler):
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._outcomes: list[str] = []

    def outputs(self, records: Sequence[ConsumerRecord]) -> list[Output]:
        outputs, self._outcomes = outputs_of(
            [record.value for record in records],
            self._clock,
            [location_of(record) for record in records],
        )
        return outputs

    def committed(self, records: Sequence[ConsumerRecord]) -> None:
        done = self._clock.now()
        for record, outcome in zip(records, self._outcomes, strict=True):
            metrics.MAILS_PARSED.labels(metrics.MailOutcome(outcome)).inc()
            spooled_at = record.timestamp / 1000
            metrics.SPOOL_TO_EVENT_SECONDS.observe(max(0.0, done.timestamp() - spooled_at))


class MailParser:
    def __init__(self, settings: Settings, clock: Clock, producer: Producer | None = None) -> None:
        bootstrap = settings.kafka_bootstrap
        consumer = new_consumer(
            bootstrap,
            group_id=f"{settings.app_id}-mail-parser",
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=MAIL_SPOOL_MAX_BYTES,
            max_poll_interval_ms=POLL_INTERVAL_MS,
        )
        consumer.subscribe([MAIL_SPOOL], listener=_CountsPartitions())
        self._loop = ConsumeLoop(
            "mail parser",
            consumer,
            _ParsesMail(clock),
            lambda: new_producer(
                bootstrap,
                linger_ms=2,
                # a dead letter holds a whole mail: as large as a spooled one
                max_request_size=DEAD_LETTER_MAX_BYTES + 64 * 1024,
            ),
            producer=producer,
            max_records=BATCH_MAILS,
        )

    def run(self, stop: StopSignal) -> None:
        self._loop.run(stop)

    def step(self) -> None:
        """Read one batch from the spool and publish it, or rewind to read it again."""
        self._loop.step()

    def close(self) -> None:
        self._loop.close()


class _CountsPartitions(ConsumerRebalanceListener):  # type: ignore[misc]
    """Keeps ``ticketing_mail_parser_assigned_partitions`` up to date."""

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        metrics.MAIL_PARSER_PARTITIONS.set(len(assigned))

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        metrics.MAIL_PARSER_PARTITIONS.set(0)


def run_mail_parser(settings: Settings, clock: Clock | None = None) -> None:
    configure_logging(settings)
    wait_until_kafka_answers(bootstrap_servers(settings.kafka_bootstrap))
    parser = MailParser(settings, clock or SystemClock())
    port = metrics.serve_metrics(settings.mail_parser_metrics_port, settings.metrics_host)
    print(
        f"mail-parser: reading {MAIL_SPOOL} into {TICKET_EVENTS}; "
        f"metrics on http://{settings.metrics_host}:{port}/metrics",
        flush=True,
    )
    parser.run(StopSignal())
