"""A lease through Kafka's group protocol: the member of a consumer group that is assigned
partition 0 of a single-partition topic holds it. The coordinator gives a partition to one
live member at a time; a member that stops loses it at once, one that stops answering
after its session times out (decision 54)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable

from aiokafka import ConsumerRebalanceListener, TopicPartition
from kafka import ConsumerRebalanceListener as KafkaRebalanceListener
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import KafkaError

from engine.kafka.consumer import new_aio_group_consumer, new_consumer

log = logging.getLogger(__name__)
SESSION_MS = 6000
HEARTBEAT_MS = 2000
REJOIN_SECONDS = 2.0


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


class BlockingLease:
    """The same lease for a synchronous worker (the entitlements ledger): a kafka-python
    member of ``group_id`` polled by a thread of its own. ``held`` is true while this
    process holds partition 0 and its last poll is recent: a process that was paused
    (SIGSTOP, a long GC) stops holding the lease the moment it resumes, before it learns
    it was revoked, since the group may have given the lease to another member meanwhile."""

    def __init__(self, bootstrap: str, group_id: str, topic: str) -> None:
        self._group_id = group_id
        self._assigned = threading.Event()
        self._last_poll = 0.0
        self._closing = threading.Event()
        self._failing = False
        self._bootstrap = bootstrap
        self._topic = topic
        self._thread = threading.Thread(target=self._poll, name=f"lease {group_id}", daemon=True)
        self._thread.start()

    @property
    def held(self) -> bool:
        recent = time.monotonic() - self._last_poll < SESSION_MS / 2000
        return self._assigned.is_set() and recent

    def wait_held(self, stop: Callable[[], bool], poll_seconds: float = 0.5) -> bool:
        """Wait until the lease is held (True) or ``stop()`` says to give up (False)."""
        while not stop():
            if self.held:
                return True
            self._assigned.wait(poll_seconds)
        return False

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=10)

    def _assign(self, held: bool) -> None:
        if held != self._assigned.is_set():
            log.warning("%s: %s the lease", self._group_id, "holding" if held else "gave up")
        if held:
            self._assigned.set()
        else:
            self._assigned.clear()

    def _poll(self) -> None:
        """Take part in the group until closed. A member Kafka fails (a broker outage:
        kafka-python raises from ``poll``) gives up the lease and joins again, so the
        process takes its turn once Kafka is back instead of standing by for good."""
        while not self._closing.is_set():
            try:
                self._take_part()
            except Exception as error:
                if not self._failing:
                    log.warning(
                        "%s: the lease's member failed (%s: %s); joining again every %g s",
                        self._group_id, type(error).__name__, error, REJOIN_SECONDS,
                        exc_info=not isinstance(error, KafkaError),
                    )  # fmt: skip
                self._failing = True
                self._closing.wait(REJOIN_SECONDS)

    def _take_part(self) -> None:
        consumer = new_member(self._bootstrap, self._group_id)
        try:
            consumer.subscribe([self._topic], listener=_BlockingListener(self._assign))
            while not self._closing.is_set():
                consumer.poll(timeout_ms=500, max_records=100)
                self._last_poll = time.monotonic()
                self._failing = False  # the next failure is news again
        finally:
            self._assign(False)
            with contextlib.suppress(Exception):
                consumer.close()


def new_member(bootstrap: str, group_id: str) -> KafkaConsumer:
    """A kafka-python member of the lease's group."""
    return new_consumer(
        bootstrap, group_id=group_id,
        session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
    )  # fmt: skip


class _BlockingListener(KafkaRebalanceListener):  # type: ignore[misc]
    def __init__(self, assign: Callable[[bool], None]) -> None:
        self._assign = assign

    def on_partitions_revoked(self, revoked: Iterable[KafkaTopicPartition]) -> None:
        self._assign(False)

    def on_partitions_assigned(self, assigned: Iterable[KafkaTopicPartition]) -> None:
        self._assign(any(tp.partition == 0 for tp in assigned))
