"""Reading a topic from its beginning (or from a time) to its end: for the followers of
compacted topics (``engine.kafka.follower``), a process that reads one once at start, and
the SLA worker reading back the alerts recently sent on the partitions it took over."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from aiokafka import ConsumerRecord
from aiokafka import TopicPartition as AioTopicPartition
from kafka import TopicPartition

from engine.kafka.consumer import new_aio_consumer, new_consumer

POLL_MS = 1000


def caught_up(positions: Sequence[int], ends: Sequence[int]) -> bool:
    """Whether every position has reached the end offset it is compared with.

    The end offset counts every offset of the log, and some never reach a consumer:
    transaction markers, aborted records, records compacted away. A reader that waits
    for the record at ``end - 1`` can wait for good; its position moves past them."""
    return all(position >= end for position, end in zip(positions, ends, strict=True))


def records_to_end(bootstrap: str, topic: str) -> Iterator[Any]:
    """Every record of ``topic`` from the first one kept, up to the end offsets it had when
    the reading began (kafka-python's records, synchronously)."""
    consumer = new_consumer(bootstrap)
    try:
        numbers = consumer.partitions_for_topic(topic) or set()
        partitions = [TopicPartition(topic, n) for n in sorted(numbers)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        while not caught_up(
            [consumer.position(tp) for tp in partitions], [ends[tp] for tp in partitions]
        ):
            for records in consumer.poll(timeout_ms=POLL_MS).values():
                yield from records
    finally:
        consumer.close()


async def records_since(
    bootstrap: str, partitions: Sequence[AioTopicPartition], since_ms: int
) -> list[ConsumerRecord[bytes, bytes]]:
    """The records of ``partitions`` written since ``since_ms`` (CreateTime, ms since the
    epoch), up to the end offsets they had when the reading began (aiokafka)."""
    if not partitions:
        return []
    consumer = new_aio_consumer(bootstrap)
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        await consumer.start()
        consumer.assign(list(partitions))
        starts = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
        ends = await consumer.end_offsets(list(partitions))
        for tp in partitions:
            start = starts.get(tp)
            consumer.seek(tp, start.offset if start is not None else ends[tp])
        while not caught_up(
            [await consumer.position(tp) for tp in partitions], [ends[tp] for tp in partitions]
        ):
            batches = await consumer.getmany(timeout_ms=POLL_MS)
            for tp, records in batches.items():
                found.extend(record for record in records if record.offset < ends[tp])
    finally:
        await consumer.stop()
    return found
