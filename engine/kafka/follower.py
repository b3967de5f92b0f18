"""Following compacted topics: read them from the start to their end (the catch-up), then
every new record, for the life of the process; start over after a failure.

One class for the processor's rules and balances and for the API's ticket view. What a
record means is the caller's (``apply``); how the topics are read is the same for all:

- the catch-up ends when every partition's position reached the end offset it had when
  the reading began (``catch_up.caught_up``: positions, not the last record's offset, so a
  topic ending with a transaction marker or a compacted-away record is read to its end);
- ``caught_up`` is set after the first catch-up and stays set;
- a follower that wants the current value, not the history (``latest_only``), is handed
  only the last record of each key read during a catch-up, at its end;
- ``live`` topics are read from their end, never caught up with;
- after a failure the reading starts over from the start, after a pause that grows while
  Kafka stays away, with jitter so that every process does not come back at once; a
  catch-up that completes resets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from engine.errors import EngineError
from engine.kafka.catch_up import POLL_MS, caught_up
from engine.kafka.consumer import new_aio_consumer
from engine.kafka.retry import Attempts, Backoff, Draw

log = logging.getLogger(__name__)

FOLLOWER_BACKOFF = Backoff(first_seconds=1.0, max_seconds=30.0)
Apply = Callable[[ConsumerRecord[bytes, bytes]], None]


class UnknownTopicError(EngineError):
    """A followed topic has no partitions on the cluster (not provisioned yet)."""


class Follower:
    def __init__(
        self,
        name: str,
        bootstrap: str,
        topics: Sequence[str],
        apply: Apply,
        *,
        live: Sequence[str] = (),
        latest_only: bool = False,
        max_records: int | None = None,
        backoff: Backoff = FOLLOWER_BACKOFF,
        new_consumer: Callable[[str], AIOKafkaConsumer] = new_aio_consumer,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        draw: Draw = random.random,
    ) -> None:
        self.name = name
        self._bootstrap = bootstrap
        self._topics = tuple(topics)
        self._live = tuple(live)
        self._apply = apply
        self._latest_only = latest_only
        self._max_records = max_records
        self._new_consumer = new_consumer
        self._sleep = sleep
        self.attempts = Attempts(backoff, draw)
        self.caught_up = asyncio.Event()

    async def run(self) -> None:
        """Follow the topics until cancelled; a failure is logged and the reading starts
        over after a pause."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                pause = self.attempts.failed()
                log.warning(
                    "%s: reading %s failed (%r); starting over in %.1fs",
                    self.name, ", ".join(self._topics), error, pause,
                )  # fmt: skip
                await self._sleep(pause)

    async def _follow(self) -> None:
        consumer = self._new_consumer(self._bootstrap)
        try:
            await consumer.start()
            rebuilt = await _partitions(consumer, self._topics)
            live = await _partitions(consumer, self._live)
            consumer.assign([*rebuilt, *live])
            if rebuilt:  # no partitions would mean every assigned one
                await consumer.seek_to_beginning(*rebuilt)
            if live:
                await consumer.seek_to_end(*live)
            await self._catch_up(consumer, rebuilt)
            self.attempts.succeeded()
            self.caught_up.set()
            log.info("%s: read %s to the end", self.name, ", ".join(self._topics))
            while True:
                for record in await self._records(consumer):
                    self._apply(record)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _catch_up(self, consumer: AIOKafkaConsumer, rebuilt: list[TopicPartition]) -> None:
        ends = await consumer.end_offsets(rebuilt)
        kept: dict[tuple[str, int, bytes | None], ConsumerRecord[bytes, bytes]] = {}
        while not caught_up(
            [await consumer.position(tp) for tp in rebuilt], [ends[tp] for tp in rebuilt]
        ):
            for record in await self._records(consumer):
                if self._latest_only and record.topic not in self._live:
                    kept.pop((record.topic, record.partition, record.key), None)
                    kept[(record.topic, record.partition, record.key)] = record
                else:
                    self._apply(record)
        for record in kept.values():  # in the order their last records were read
            self._apply(record)

    async def _records(self, consumer: AIOKafkaConsumer) -> list[ConsumerRecord[bytes, bytes]]:
        batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=self._max_records)
        return [record for records in batches.values() for record in records]


async def _partitions(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    # The consumer's public partitions_for_topic only knows topics it already follows.
    cluster: Any = await consumer._client.fetch_all_metadata()
    found: list[TopicPartition] = []
    for topic in topics:
        numbers = cluster.partitions_for_topic(topic)
        if not numbers:
            raise UnknownTopicError(f"no topic {topic} on the cluster")
        found.extend(TopicPartition(topic, n) for n in sorted(numbers))
    return found
