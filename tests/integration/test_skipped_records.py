"""Records faust's stream skipped are read from Kafka and handled in their place
(engine.kafka.faust_app.handle_batches), against a real broker (what needs no broker:
tests/unit/kafka/test_handle_batches.py).

faust itself cannot be made to skip on demand, so the stream here hands over the records
of a real topic with holes in it, as faust 0.15.3 does after some rebalances; everything
else (reading the holes again, their order, what faust is told it may commit) is the
engine's code against the broker."""

from __future__ import annotations

import yarl
from faust.types import TP
from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from engine.kafka.consumer import new_consumer
from engine.kafka.producer import new_producer
from tests.unit.kafka.faust_stream_fakes import (
    FakeApp,
    FakeConf,
    FakeEvent,
    FakeMessage,
    SkippingStream,
    handled_batches,
    offsets_of,
)


def written(kafka: str, topic: str, count: int) -> list[bytes]:
    values = [f"record {offset}".encode() for offset in range(count)]
    producer = new_producer(kafka)
    try:
        for value in values:
            producer.send(topic, value=value, partition=0).get(timeout=30)
    finally:
        producer.close(timeout=10)
    return values


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
