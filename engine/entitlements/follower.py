"""Following ``entitlements.balances.v1``: every customer's hours left, kept current.

The processor reads it to route a new ticket of a customer without hours left; it never
waits for it longer than the rules' catch-up (an unknown balance routes normally)."""

from __future__ import annotations

import logging

from aiokafka import ConsumerRecord

from engine import metrics
from engine.contract import EntitlementUpdated, parse_record
from engine.contract.topics import ENTITLEMENT_BALANCES
from engine.kafka.follower import Follower

log = logging.getLogger(__name__)


class BalancesFollower:
    def __init__(self, bootstrap: str) -> None:
        self.hours_left: dict[str, float] = {}
        self._follower = Follower(
            "entitlements", bootstrap, [ENTITLEMENT_BALANCES], self._apply_record
        )
        self.caught_up = self._follower.caught_up

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            if key is not None:  # a key that is not UTF-8 names no customer; never raise
                self.hours_left.pop(key.decode(errors="replace"), None)
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
        await self._follower.run()
