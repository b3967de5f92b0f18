"""Reading a topic from its beginning to its end, for the processes that follow one (the
processor's rules and balances followers)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

POLL_MS = 1000


def caught_up(positions: Sequence[int], ends: Sequence[int]) -> bool:
    """Whether every position has reached the end offset it is compared with.

    The end offset counts every offset of the log, and some never reach a consumer:
    transaction markers, aborted records, records compacted away. A reader that waits
    for the record at ``end - 1`` can wait for good; its position moves past them."""
    return all(position >= end for position, end in zip(positions, ends, strict=True))


async def read_to_end(
    consumer: AIOKafkaConsumer,
    partitions: Sequence[TopicPartition],
    on_record: Callable[[ConsumerRecord[bytes, bytes]], None],
) -> None:
    """Hand every record of the assigned ``partitions``, from the first one kept, to
    ``on_record``, up to the end offsets they had when the reading began."""
    await consumer.seek_to_beginning(*partitions)
    ends = await consumer.end_offsets(list(partitions))
    while not caught_up(
        [await consumer.position(tp) for tp in partitions], [ends[tp] for tp in partitions]
    ):
        for records in (await consumer.getmany(*partitions, timeout_ms=POLL_MS)).values():
            for record in records:
                on_record(record)


async def follow(
    consumer: AIOKafkaConsumer, on_record: Callable[[ConsumerRecord[bytes, bytes]], None]
) -> None:
    """Hand every new record of the assigned partitions to ``on_record``, for good."""
    while True:
        for records in (await consumer.getmany(timeout_ms=POLL_MS)).values():
            for record in records:
                on_record(record)
