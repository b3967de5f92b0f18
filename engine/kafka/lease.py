"""A lease through Kafka's group protocol: the member of a consumer group that is assigned
partition 0 of a single-partition topic holds it. The coordinator gives a partition to one
live member at a time; a member that stops loses it at once, one that stops answering
after its session times out (decision 54)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from aiokafka import ConsumerRebalanceListener, TopicPartition

from engine.kafka.consumer import new_aio_group_consumer

log = logging.getLogger(__name__)
SESSION_MS = 6000
HEARTBEAT_MS = 2000


class Lease(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topic: str,
        on_change: Callable[[bool], None] = lambda held: None,
    ) -> None:
        self.held = asyncio.Event()
        self._topic = topic
        self._group_id = group_id
        self._on_change = on_change
        self._consumer = new_aio_group_consumer(
            bootstrap, group_id, session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS
        )

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._set(False)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._set(any(tp.partition == 0 for tp in assigned))

    def _set(self, held: bool) -> None:
        if held != self.held.is_set():
            log.warning("%s: %s the lease", self._group_id, "holding" if held else "gave up")
        if held:
            self.held.set()
        else:
            self.held.clear()
        self._on_change(held)

    async def run(self) -> None:
        """Take part in the group until cancelled; polling keeps the membership (the
        records themselves are not this class's)."""
        consumer = self._consumer
        await consumer.start()
        try:
            consumer.subscribe([self._topic], listener=self)
            while True:
                await consumer.getmany(timeout_ms=1000, max_records=100)
        finally:
            self._set(False)
            with contextlib.suppress(Exception):
                await consumer.stop()
