"""``engine mail-parser``: reads the mail spool into ticket events, as a process.

Each spooled mail becomes its ``email.received`` event on ``tickets.events.v1`` (keyed by
the ticket it was spooled under, so a ticket's mails keep their order), or a dead letter
with the reason. Offsets are committed only after Kafka acknowledged every output of the
batch; when it does not, the batch is read again after a pause. A mail may so be read
twice, into the same event id: the processor's outcome is the same (DESIGN.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from engine import metrics
from engine.clock import Clock, SystemClock
from engine.contract import EmailReceived, to_json
from engine.contract.topics import (
    DEAD_LETTER_MAX_BYTES,
    DEAD_LETTERS,
    MAIL_SPOOL,
    MAIL_SPOOL_MAX_BYTES,
    TICKET_EVENTS,
    TICKET_RECORD_MAX_BYTES,
)
from engine.ingest.mail.spool import read_spooled
from engine.kafka.deadletter import dead_letter
from engine.process import StopSignal, configure_logging
from engine.settings import Settings

log = logging.getLogger(__name__)

RETRY_PAUSE_SECONDS = 2.0
SEND_TIMEOUT_SECONDS = 30.0
PRODUCER_CLOSE_SECONDS = 5.0
Output = tuple[str, bytes, bytes]


def outputs_of(values: Sequence[bytes], clock: Clock) -> tuple[list[Output], list[str]]:
    """What to publish for these spool records, in their order, and each one's outcome."""
    outputs: list[Output] = []
    outcomes: list[str] = []
    for value in values:
        read = read_spooled(value, clock.now())
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
            )
        key = read.data.payload_sha256.encode()
        outputs.append((DEAD_LETTERS, key, to_json(read)))
        outcomes.append("dead_lettered")
    return outputs, outcomes


class MailParser:
    def __init__(
        self, settings: Settings, clock: Clock, producer: KafkaProducer | None = None
    ) -> None:
        bootstrap = settings.kafka_bootstrap.split(",")
        self._clock = clock
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=f"{settings.app_id}-mail-parser",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=MAIL_SPOOL_MAX_BYTES,
        )
        self._consumer.subscribe([MAIL_SPOOL], listener=_CountsPartitions())
        self._bootstrap = bootstrap
        self._producer: KafkaProducer | None = producer

    def run(self, stop: StopSignal) -> None:
        try:
            while not stop.requested:
                self.step()
        finally:
            self.close()

    def _new_producer(self) -> KafkaProducer:
        return KafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            # a dead letter holds a whole mail: as large as a spooled one
            max_request_size=DEAD_LETTER_MAX_BYTES + 64 * 1024,
        )

    def close(self) -> None:
        self._consumer.close()
        self._drop_producer()

    def _drop_producer(self) -> None:
        """Close the producer (an idempotent one may be left in a fatal state after a
        failure); the next batch starts a new one."""
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=PRODUCER_CLOSE_SECONDS)

    def step(self) -> None:
        """Read one batch from the spool and publish it, or rewind to read it again."""
        batches = self._consumer.poll(timeout_ms=1000, max_records=500)
        records = [record for part in batches.values() for record in part]
        if not records:
            return
        outputs, outcomes = outputs_of([record.value for record in records], self._clock)
        try:
            self._publish(outputs)
        except KafkaError as error:
            log.warning("mail parser: Kafka did not take a batch (%s); reading it again", error)
            self._rewind(batches)
            self._drop_producer()
            time.sleep(RETRY_PAUSE_SECONDS)
            return
        self._consumer.commit()
        done = self._clock.now()
        for record, outcome in zip(records, outcomes, strict=True):
            metrics.MAILS_PARSED.labels(metrics.MailOutcome(outcome)).inc()
            spooled_at = record.timestamp / 1000
            metrics.SPOOL_TO_EVENT_SECONDS.observe(max(0.0, done.timestamp() - spooled_at))

    def _publish(self, outputs: list[Output]) -> None:
        if self._producer is None:
            self._producer = self._new_producer()  # raises a KafkaError while Kafka is away
        producer = self._producer
        futures = [producer.send(topic, key=key, value=value) for topic, key, value in outputs]
        for future in futures:
            future.get(timeout=SEND_TIMEOUT_SECONDS)

    def _rewind(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for partition, records in batches.items():
            self._consumer.seek(partition, records[0].offset)


class _CountsPartitions(ConsumerRebalanceListener):  # type: ignore[misc]
    """Keeps ``ticketing_mail_parser_assigned_partitions`` up to date."""

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        metrics.MAIL_PARSER_PARTITIONS.set(len(assigned))

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        metrics.MAIL_PARSER_PARTITIONS.set(0)


def run_mail_parser(settings: Settings, clock: Clock | None = None) -> None:
    configure_logging(settings)
    parser = MailParser(settings, clock or SystemClock())
    port = metrics.serve_metrics(settings.mail_parser_metrics_port, settings.metrics_host)
    print(
        f"mail-parser: reading {MAIL_SPOOL} into {TICKET_EVENTS}; "
        f"metrics on http://{settings.metrics_host}:{port}/metrics",
        flush=True,
    )
    parser.run(StopSignal())
