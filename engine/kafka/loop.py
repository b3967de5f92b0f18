"""The synchronous consume -> produce -> commit loop of the engine's workers (the mail
parser, the entitlements ledger, the notifier).

Its guarantees (decision 7):

- a batch's offsets are committed only after Kafka acknowledged every output of the batch
  (effects first, then the commit: a crash replays, it never loses);
- a batch whose outputs Kafka did not take is rewound and read again, after a pause that
  grows while Kafka keeps refusing (backoff with jitter), and the handler is told so it
  can forget what the batch changed;
- the producer that failed is closed (within a bound: it may be left in a fatal state, an
  idempotent producer's fate after some errors) and the next batch gets a new one;
- an output Kafka refuses as too large is no outage (it would be refused again, for ever):
  the outputs are sent again one by one, each one refused for its size replaced by a dead
  letter that keeps its first bytes, its SHA-256 and size (``engine.kafka.deadletter``),
  and the batch moves on.

What a batch means is the handler's: ``BatchHandler.outputs`` turns records into the
records to publish; ``refused`` and ``committed`` are optional hooks.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from kafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError

from engine.clock import SystemClock
from engine.contract import to_json
from engine.contract.topics import DEAD_LETTERS
from engine.kafka.deadletter import dead_letter, location_of
from engine.kafka.producer import Producer, Record, send_all
from engine.kafka.retry import Attempts, Backoff, Draw
from engine.outage_log import KAFKA_COMPLAINT

log = logging.getLogger(__name__)

LOOP_BACKOFF = Backoff(first_seconds=2.0, max_seconds=30.0)
# A poll that failed (Kafka away, its coordinator moving) is tried again soon: nothing waits
# to be sent, and the loop should read again as soon as Kafka is back.
POLL_BACKOFF = Backoff(first_seconds=0.5, max_seconds=5.0)
PRODUCER_CLOSE_SECONDS = 5.0
POLL_MS = 1000
MAX_RECORDS = 500
# What a dead letter standing for a refused output keeps of it: within any producer's
# and topic's limit (Kafka's default is 1 MiB).
TOO_LARGE_KEPT_BYTES = 512 * 1024
TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)


class Consumer(Protocol):
    """What the loop uses of a kafka-python consumer (a fake in tests)."""

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[Any]]: ...

    def seek(self, partition: Any, offset: int) -> None: ...

    def commit(self) -> None: ...

    def close(self) -> None: ...


class Stop(Protocol):
    """Asked before every batch whether to stop; told after every batch (or empty poll)
    that the loop runs (``engine.process.StopSignal`` tells systemd)."""

    @property
    def requested(self) -> bool: ...

    def alive(self) -> None: ...


class BatchHandler:
    """What a worker does with a batch; implement ``outputs``, and the hooks you need."""

    def outputs(self, records: Sequence[Any]) -> Sequence[Record]:
        """The records to publish for these consumed ones, in order. Any other effect
        (a mail handed to a relay) happens again when the batch is read again."""
        raise NotImplementedError

    def refused(self) -> None:
        """Kafka did not take the outputs: the batch will be read again, so forget what
        ``outputs`` changed."""

    def committed(self, records: Sequence[Any]) -> None:
        """Kafka took the outputs and the batch's offsets are committed."""


class ConsumeLoop:
    def __init__(
        self,
        name: str,
        consumer: Consumer,
        handler: BatchHandler,
        new_producer: Callable[[], Producer],
        *,
        producer: Producer | None = None,
        backoff: Backoff = LOOP_BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
        draw: Draw = random.random,
        max_records: int = MAX_RECORDS,
    ) -> None:
        self.name = name
        self._consumer = consumer
        self._handler = handler
        self._new_producer = new_producer
        self._producer = producer
        self._attempts = Attempts(backoff, draw)
        self._polls = Attempts(POLL_BACKOFF, draw)
        self._sleep = sleep
        self._max_records = max_records

    def run(self, stop: Stop) -> None:
        """Batch after batch until ``stop.requested``, saying ``stop.alive()`` after each
        one; then close the clients."""
        try:
            while not stop.requested:
                self.step()
                stop.alive()
        finally:
            self.close()

    def step(self) -> None:
        """Read one batch and publish its outputs, then commit; or rewind to read it again."""
        try:
            batches = self._consumer.poll(timeout_ms=POLL_MS, max_records=self._max_records)
        except KafkaError as error:
            pause = self._polls.failed()
            log.warning("%s: reading from Kafka failed (%s); reading again in %.1fs",
                        self.name, error, pause, extra=KAFKA_COMPLAINT)  # fmt: skip
            self._sleep(pause)
            return
        self._polls.succeeded()
        records = [record for part in batches.values() for record in part]
        if not records:
            return
        outputs = self._handler.outputs(records)
        try:
            try:
                self.publish(outputs)
            except TOO_LARGE as error:
                log.error("%s: Kafka refused an output as too large (%s); sending the "
                          "batch's outputs one by one", self.name, error)  # fmt: skip
                self._publish_each(outputs, records)
        except KafkaError as error:
            pause = self._attempts.failed()
            log.warning(
                "%s: Kafka did not take a batch (%s); reading it again in %.1fs",
                self.name, error, pause,
            )  # fmt: skip
            for partition, part in batches.items():
                self._consumer.seek(partition, part[0].offset)
            self._handler.refused()
            self._sleep(pause)
            return
        self._attempts.succeeded()
        try:
            self._consumer.commit()
        except KafkaError as error:
            log.warning(
                "%s: Kafka did not take the commit of a published batch (%s); it is committed "
                "with the next batch, or read again (same event ids) if its partitions move",
                self.name, error, extra=KAFKA_COMPLAINT,
            )  # fmt: skip
            return
        self._handler.committed(records)

    def publish(self, outputs: Sequence[Record]) -> None:
        """Return once Kafka acknowledged every output; on a KafkaError the producer is
        dropped (the next publish starts a new one) and the error raised."""
        try:
            if self._producer is None:
                self._producer = self._new_producer()  # a KafkaError while Kafka is away
            send_all(self._producer, outputs)
        except KafkaError:
            self._drop_producer()
            raise

    def _publish_each(self, outputs: Sequence[Record], records: Sequence[Any]) -> None:
        """Publish the outputs in order, each refused as too large replaced by its dead
        letter; raise any other KafkaError."""
        for output in outputs:
            try:
                self.publish([output])
            except TOO_LARGE as error:
                self.publish([_too_large_letter(output, records, error, self.name)])

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=PRODUCER_CLOSE_SECONDS)
            except Exception as error:  # a broken producer may fail to close too
                log.warning("%s: closing the failed producer: %s", self.name, error)

    def close(self) -> None:
        self._consumer.close()
        self._drop_producer()


def _too_large_letter(
    output: Record, records: Sequence[Any], error: Exception, name: str
) -> Record:
    """The dead letter standing for an output Kafka refused as too large: its first bytes,
    and the consumed record it came from when the batch was one record."""
    topic, _key, value = output
    origin = location_of(records[0]) if len(records) == 1 else None
    letter = dead_letter(
        value,
        reason=f"{name}: a {len(value):,}-byte record for {topic} was refused as too large "
        f"({type(error).__name__})",
        field=None,
        origin=topic,
        source=name,
        now=SystemClock().now(),
        original=origin,
        max_payload_bytes=TOO_LARGE_KEPT_BYTES,
    )
    return DEAD_LETTERS, letter.data.payload_sha256.encode(), to_json(letter)
