"""Records faust's stream skipped are read from Kafka and handled in their place
(engine.kafka.faust_app.handle_batches), against a real broker.

faust itself cannot be made to skip on demand, so the stream here hands over the records
of a real topic with holes in it, as faust 0.15.3 does after some rebalances; everything
else (reading the holes again, their order, what faust is told it may commit) is the
engine's code against the broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import yarl
from faust.types import TP
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from engine.kafka.consumer import new_consumer
from engine.kafka.faust_app import StreamRecord, handle_batches
from engine.kafka.producer import new_producer


@dataclass(eq=False)
class FakeMessage:
    tp: TP
    offset: int
    key: bytes | None
    value: bytes | None
    generation_id: int = 1
    acked: bool = False


@dataclass
class FakeEvent:
    message: FakeMessage


@dataclass
class FakeConsumer:
    """faust's consumer, as far as the engine reads and tells it."""

    _committed_offset: dict[TP, int | None] = field(default_factory=dict)
    _unacked_messages: set[Any] = field(default_factory=set)
    gaps: list[tuple[TP, int, int]] = field(default_factory=list)

    def ack(self, message: FakeMessage) -> bool:
        return True

    async def seek_to_committed(self) -> dict[TP, int]:
        return {}

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        return dict.fromkeys(partitions, 0)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        self.gaps.append((tp, offset_from, offset_to))


class FakeSignal:
    def connect(self, receiver: Any) -> None:
        pass


@dataclass
class FakeConf:
    broker: list[yarl.URL]
    id: str = "skipped-records"


@dataclass
class FakeFlow:
    def is_active(self) -> bool:
        return True


@dataclass
class FakeApp:
    conf: FakeConf
    consumer: FakeConsumer = field(default_factory=FakeConsumer)
    flow_control: FakeFlow = field(default_factory=FakeFlow)
    consumer_generation_id: int = 1
    on_partitions_revoked: FakeSignal = field(default_factory=FakeSignal)


@dataclass
class FakeChannel:
    topics: tuple[str, ...]


@dataclass
class SkippingStream:
    """Hands over the given batches of a partition's records, as faust would."""

    app: FakeApp
    batches: list[list[FakeEvent]]
    channel: FakeChannel = field(default_factory=lambda: FakeChannel(("tickets.events.v1",)))

    async def take_events(self, max_events: int, within: float) -> AsyncIterator[list[FakeEvent]]:
        for batch in self.batches:
            yield batch


def written(kafka: str, topic: str, count: int) -> list[bytes]:
    values = [f"record {offset}".encode() for offset in range(count)]
    producer = new_producer(kafka)
    try:
        for value in values:
            producer.send(topic, value=value, partition=0).get(timeout=30)
    finally:
        producer.close(timeout=10)
    return values


def handled_batches(stream: SkippingStream) -> list[list[StreamRecord]]:
    """What ``handle_batches`` hands to its handler, batch by batch."""
    handled: list[list[StreamRecord]] = []

    async def handle(records: Sequence[StreamRecord]) -> None:
        handled.append(list(records))

    asyncio.run(handle_batches(stream, handle, "test", contiguous=True))
    return handled


def offsets_of(batches: list[list[StreamRecord]]) -> list[int]:
    return [record.offset for batch in batches for record in batch]


def test_records_the_stream_skipped_are_read_again_and_handled_in_their_order(
    topics: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}tickets.events.v1"
    values = written(topics, topic, 14)
    tp = TP(topic, 0)

    def handed_over(*offsets: int) -> list[FakeEvent]:
        return [FakeEvent(FakeMessage(tp, offset, None, values[offset])) for offset in offsets]

    app = FakeApp(FakeConf([yarl.URL(f"kafka://{topics}")]))
    app.consumer._committed_offset[tp] = 2  # records 0 and 1 were handled before
    handled = handled_batches(SkippingStream(app, [handed_over(2, 3, 7, 8), handed_over(9, 13)]))

    assert [[record.offset for record in batch] for batch in handled] == [
        [2, 3, 4, 5, 6, 7, 8],
        [9, 10, 11, 12, 13],
    ]
    assert [record.value for batch in handled for record in batch] == values[2:]
    assert app.consumer.gaps == [(tp, 4, 6), (tp, 10, 12)]


def test_records_that_follow_one_another_are_handed_on_with_nothing_read_again(
    topics: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}tickets.events.v1"
    tp = TP(topic, 1)
    app = FakeApp(FakeConf([yarl.URL("kafka://127.0.0.1:9")]))  # nothing answers there
    app.consumer._committed_offset[tp] = 5
    events = [FakeEvent(FakeMessage(tp, offset, None, b"x")) for offset in (5, 6, 7)]

    assert offsets_of(handled_batches(SkippingStream(app, [events]))) == [5, 6, 7]
    assert app.consumer.gaps == []


def test_a_partition_faust_has_no_committed_offset_for_is_checked_against_the_group_s(
    topics: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}tickets.events.v1"
    values = written(topics, topic, 12)
    tp = TP(topic, 0)
    group = f"{topic_prefix}group"
    committer = new_consumer(topics, group_id=group)
    try:
        committer.commit({TopicPartition(topic, 0): OffsetAndMetadata(5, "", -1)})
    finally:
        committer.close()
    app = FakeApp(FakeConf([yarl.URL(f"kafka://{topics}")], id=group))
    # faust forgot the partition's committed offset at a revocation and hands over 9 first
    events = [FakeEvent(FakeMessage(tp, offset, None, values[offset])) for offset in (9, 10)]

    assert offsets_of(handled_batches(SkippingStream(app, [events]))) == [5, 6, 7, 8, 9, 10]
    assert app.consumer.gaps == [(tp, 5, 8)]


def test_faust_s_own_gaps_are_not_recorded_in_a_contiguous_topic(
    topics: str, topic_prefix: str
) -> None:
    app = FakeApp(FakeConf([yarl.URL("kafka://127.0.0.1:9")]))
    stream = SkippingStream(app, [])

    async def handle(records: Sequence[StreamRecord]) -> None:
        pass

    async def faust_sees_a_jump() -> None:
        await handle_batches(stream, handle, "test", contiguous=True)
        await app.consumer._add_gap(TP("tickets.events.v1", 0), 3, 8)
        await app.consumer._add_gap(TP("mail.spool.v1", 0), 3, 8)

    asyncio.run(faust_sees_a_jump())

    assert app.consumer.gaps == [(TP("mail.spool.v1", 0), 3, 8)]
