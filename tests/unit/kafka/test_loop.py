"""The consume -> produce -> commit loop against fakes at its seam: a consumer that hands
out a log's records from its position, and producers whose acks the test decides."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError

from engine.contract import RecordDeadLettered, parse_record
from engine.contract.topics import DEAD_LETTERS
from engine.kafka.loop import BatchHandler, ConsumeLoop
from engine.kafka.producer import Record


@dataclass(frozen=True)
class Consumed:
    topic: str
    partition: int
    offset: int
    value: bytes


class FakeConsumer:
    """One partition of a log; ``committed`` is the offset committed last."""

    def __init__(self, values: Sequence[bytes], log: list[str]) -> None:
        self.records = [Consumed("in", 0, n, value) for n, value in enumerate(values)]
        self.position = 0
        self.committed = 0
        self.closed = False
        self.log = log

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[Any]]:
        batch = self.records[self.position : self.position + (max_records or 500)]
        self.position += len(batch)
        return {("in", 0): batch} if batch else {}

    def seek(self, partition: Any, offset: int) -> None:
        self.log.append(f"seek {offset}")
        self.position = offset

    def commit(self) -> None:
        self.log.append(f"commit {self.position}")
        self.committed = self.position

    def close(self) -> None:
        self.closed = True


class Ack:
    def __init__(self, error: Exception | None, log: list[str], what: str) -> None:
        self.error, self.log, self.what = error, log, what

    def get(self, timeout: float | None = None) -> None:
        if self.error is not None:
            raise self.error
        self.log.append(f"ack {self.what}")


@dataclass
class FakeProducer:
    """Acks every send, or fails the sends with ``error`` (as a producer left in a fatal
    state would, for good)."""

    log: list[str]
    error: Exception | None = None
    sent: list[Record] = field(default_factory=list)
    closed_with: float | None = None

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> Ack:
        assert value is not None
        self.sent.append((topic, key, value))
        return Ack(self.error, self.log, value.decode())

    def close(self, timeout: float | None = None) -> None:
        self.closed_with = timeout


class Upper(BatchHandler):
    """Publishes each value in capitals; counts what it was told."""

    def __init__(self) -> None:
        self.refusals = 0
        self.committed_values: list[bytes] = []

    def outputs(self, records: Sequence[Any]) -> list[Record]:
        return [("out", None, record.value.upper()) for record in records]

    def refused(self) -> None:
        self.refusals += 1

    def committed(self, records: Sequence[Any]) -> None:
        self.committed_values += [record.value for record in records]


class Producers:
    """The factory the loop calls for a new producer: hands out the given ones in turn."""

    def __init__(self, *producers: FakeProducer) -> None:
        self.waiting = list(producers)
        self.made: list[FakeProducer] = []

    def __call__(self) -> FakeProducer:
        producer = self.waiting.pop(0)
        self.made.append(producer)
        return producer


def a_loop(
    consumer: FakeConsumer, producers: Producers, handler: BatchHandler | None = None
) -> tuple[ConsumeLoop, list[float]]:
    pauses: list[float] = []
    loop = ConsumeLoop(
        "test", consumer, handler or Upper(), producers,
        sleep=pauses.append, draw=lambda: 0.0, max_records=2,
    )  # fmt: skip
    return loop, pauses


def test_a_batch_is_committed_only_after_kafka_acknowledged_every_output() -> None:
    log: list[str] = []
    consumer = FakeConsumer([b"a", b"b", b"c"], log)
    handler = Upper()
    loop, _ = a_loop(consumer, Producers(FakeProducer(log)), handler)

    loop.step()
    loop.step()

    assert log == ["ack A", "ack B", "commit 2", "ack C", "commit 3"]
    assert handler.committed_values == [b"a", b"b", b"c"]


def test_a_batch_kafka_did_not_take_is_rewound_read_again_and_nothing_skipped() -> None:
    log: list[str] = []
    consumer = FakeConsumer([b"a", b"b", b"c"], log)
    refusing = FakeProducer(log, error=KafkaTimeoutError("no ack"))
    taking = FakeProducer(log)
    handler = Upper()
    loop, pauses = a_loop(consumer, Producers(refusing, taking), handler)

    loop.step()  # refused: nothing committed, rewound to the batch's first record
    assert consumer.committed == 0 and consumer.position == 0
    assert handler.refusals == 1 and handler.committed_values == []
    loop.step()
    loop.step()

    assert log == ["seek 0", "ack A", "ack B", "commit 2", "ack C", "commit 3"]
    assert [value for _, _, value in taking.sent] == [b"A", b"B", b"C"]
    assert handler.committed_values == [b"a", b"b", b"c"]
    assert pauses == [2.0]


def test_a_producer_that_failed_is_closed_within_a_bound_and_replaced() -> None:
    log: list[str] = []
    consumer = FakeConsumer([b"a", b"b"], log)
    fatal = FakeProducer(log, error=KafkaTimeoutError("fenced"))
    fresh = FakeProducer(log)
    producers = Producers(fatal, fresh)
    loop, _ = a_loop(consumer, producers)

    loop.step()
    loop.step()

    assert producers.made == [fatal, fresh]
    assert fatal.closed_with is not None and fatal.closed_with > 0
    assert consumer.committed == 2


def test_while_kafka_keeps_refusing_the_pause_grows_and_a_success_resets_it() -> None:
    log: list[str] = []
    consumer = FakeConsumer([b"a"], log)
    refusals = [FakeProducer(log, error=KafkaTimeoutError("no ack")) for _ in range(3)]
    taking = FakeProducer(log)
    loop, pauses = a_loop(consumer, Producers(*refusals, taking))

    for _ in range(4):
        loop.step()
    assert pauses == [2.0, 4.0, 8.0]
    assert consumer.committed == 1

    consumer.records.append(Consumed("in", 0, 1, b"b"))
    taking.error = KafkaTimeoutError("no ack")
    loop.step()
    assert pauses == [2.0, 4.0, 8.0, 2.0]


def test_no_broker_for_a_new_producer_is_a_refused_batch_too() -> None:
    log: list[str] = []
    consumer = FakeConsumer([b"a"], log)
    made: list[FakeProducer] = []

    def new_producer() -> FakeProducer:
        if not made:
            made.append(FakeProducer(log))
            raise KafkaConnectionError("no broker answers")
        return made[0]

    pauses: list[float] = []
    loop = ConsumeLoop("test", consumer, Upper(), new_producer, sleep=pauses.append)
    loop.step()
    loop.step()

    assert log == ["seek 0", "ack A", "commit 1"]


def test_the_loop_says_it_is_alive_after_each_batch_and_each_empty_poll() -> None:
    log: list[str] = []
    consumer = FakeConsumer([b"a", b"b", b"c"], log)
    loop, _ = a_loop(consumer, Producers(FakeProducer(log)))

    class AfterThree:
        """Stops after the third batch; logs where the loop said it was alive."""

        def __init__(self) -> None:
            self.alive_calls = 0

        @property
        def requested(self) -> bool:
            return self.alive_calls == 3

        def alive(self) -> None:
            self.alive_calls += 1
            log.append("alive")

    loop.run(AfterThree())

    # two batches of two records and one, then a poll that found nothing
    assert log == ["ack A", "ack B", "commit 2", "alive", "ack C", "commit 3", "alive", "alive"]
    assert consumer.closed


def test_an_error_that_is_not_kafka_s_ends_the_loop_without_a_commit() -> None:
    class Broken(Upper):
        def outputs(self, records: Sequence[Any]) -> list[Record]:
            raise OSError("relay unreachable")

    log: list[str] = []
    consumer = FakeConsumer([b"a"], log)
    loop, _ = a_loop(consumer, Producers(FakeProducer(log)), Broken())

    class Never:
        requested = False

        def alive(self) -> None:
            pass

    with pytest.raises(OSError):
        loop.run(Never())
    assert consumer.committed == 0 and consumer.closed


class SizeLimitedProducer(FakeProducer):
    """Refuses a record over 100 bytes as Kafka does (except on the dead-letter topic,
    which takes larger ones), and acks the others."""

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> Ack:
        assert value is not None
        self.sent.append((topic, key, value))
        if topic != DEAD_LETTERS and len(value) > 100:
            return Ack(MessageSizeTooLargeError(f"{len(value)} bytes"), self.log, topic)
        return Ack(None, self.log, topic)


class AnyNumberOfProducers(Producers):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def __call__(self) -> FakeProducer:
        producer = SizeLimitedProducer(self.log)
        self.made.append(producer)
        return producer


def test_an_output_kafka_refuses_as_too_large_becomes_a_dead_letter_and_the_batch_moves_on() -> (
    None
):
    log: list[str] = []
    consumer = FakeConsumer([b"a", b"x" * 5000, b"c"], log)
    producers = AnyNumberOfProducers(log)
    handler = Upper()
    loop, pauses = a_loop(consumer, producers, handler)

    loop.step()
    loop.step()

    assert pauses == [] and handler.refusals == 0 and consumer.committed == 3
    assert [entry for entry in log if not entry.startswith("ack")] == ["commit 2", "commit 3"]
    assert [entry for entry in log if entry.startswith("ack")][-3:] == [
        "ack out", f"ack {DEAD_LETTERS}", "ack out"
    ]  # fmt: skip
    sent = [record for producer in producers.made for record in producer.sent]
    letter = parse_record(next(value for topic, _, value in sent if topic == DEAD_LETTERS))
    assert isinstance(letter, RecordDeadLettered)
    assert letter.data.payload_size == 5000 and not letter.data.payload_truncated
    assert letter.data.payload_sha256 == hashlib.sha256(b"X" * 5000).hexdigest()
    assert letter.data.origin == "out" and "too large" in letter.data.reason


class FlakyConsumer(FakeConsumer):
    """Its first polls fail as kafka-python's do while Kafka is away (the coordinator
    lookup raising out of ``poll``)."""

    def __init__(self, values: Sequence[bytes], log: list[str], failures: int) -> None:
        super().__init__(values, log)
        self.failures = failures

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[Any]]:
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError("111 ECONNREFUSED")
        return super().poll(timeout_ms, max_records)


def test_a_poll_that_fails_while_kafka_is_away_is_tried_again_soon_not_a_crash() -> None:
    log: list[str] = []
    consumer = FlakyConsumer([b"a", b"b"], log, failures=3)
    loop, pauses = a_loop(consumer, Producers(FakeProducer(log)))

    for _ in range(4):
        loop.step()

    assert pauses == [0.5, 1.0, 2.0]
    assert consumer.committed == 2 and log[-1] == "commit 2"
    consumer.failures = 1
    loop.step()
    assert pauses[-1] == 0.5  # a poll that worked reset the pause


class CommitRefusingConsumer(FakeConsumer):
    """Its first commit fails as kafka-python's does when the broker goes away."""

    def __init__(self, values: Sequence[bytes], log: list[str]) -> None:
        super().__init__(values, log)
        self.refusals = 1

    def commit(self) -> None:
        if self.refusals:
            self.refusals -= 1
            raise KafkaConnectionError("111 ECONNREFUSED")
        super().commit()


def test_a_commit_kafka_does_not_take_is_made_with_the_next_batch_not_a_crash() -> None:
    log: list[str] = []
    consumer = CommitRefusingConsumer([b"a", b"b", b"c"], log)
    handler = Upper()
    loop, pauses = a_loop(consumer, Producers(FakeProducer(log)), handler)

    loop.step()
    assert consumer.committed == 0 and handler.committed_values == []
    loop.step()
    assert consumer.committed == 3 and handler.committed_values == [b"c"]
    assert pauses == []
