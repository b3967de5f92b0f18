"""Following ``entitlements.balances.v1``: every customer's hours left, kept current.

The processor reads it to route a new ticket of a customer without hours left; it never
waits for it longer than the rules' catch-up (an unknown balance routes normally)."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from engine import metrics
from engine.contract import EntitlementUpdated, parse_record
from engine.contract.topics import ENTITLEMENT_BALANCES
from engine.kafka.catch_up import follow, read_to_end

log = logging.getLogger(__name__)


class BalancesFollower:
    def __init__(self, bootstrap: str, partitions: int) -> None:
        self._bootstrap = bootstrap
        self._partitions = [TopicPartition(ENTITLEMENT_BALANCES, n) for n in range(partitions)]
        self.hours_left: dict[str, float] = {}
        self.caught_up = asyncio.Event()

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            if key is not None:
                self.hours_left.pop(key.decode(), None)
            return
        try:
            record = parse_record(value)
        except ValueError as error:
            log.error(
                "ignoring a record of %s that does not validate: %s", ENTITLEMENT_BALANCES, error
            )
            return
        if isinstance(record, EntitlementUpdated):
            self.hours_left[record.data.customer_id] = record.data.hours_left
        metrics.WITHOUT_HOURS.set(sum(left <= 0 for left in self.hours_left.values()))

    def _apply_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        self.apply(record.key, record.value)

    async def run(self) -> None:
        """Follow the topic for good; a failure is logged and the reading starts over."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "entitlements: reading %s failed; retrying in 2s", ENTITLEMENT_BALANCES
                )
                await asyncio.sleep(2)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None
        )
        await consumer.start()
        try:
            consumer.assign(self._partitions)
            await read_to_end(consumer, self._partitions, self._apply_record)
            self.caught_up.set()
            await follow(consumer, self._apply_record)
        finally:
            await consumer.stop()
