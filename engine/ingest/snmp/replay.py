"""Trap events Kafka did not take: kept in the spool (snmp_spool.py), replayed once Kafka
answers again (decision 13).

The receiver asks :meth:`TrapBacklog.reason_to_hold` about each event before publishing:
one whose ticket already has an event in the spool is spooled behind it (``behind_spool``),
so a ticket's events reach Kafka in the order they arrived; while Kafka is known to be
away, every event goes straight to the spool (``kafka_unavailable``) instead of waiting for
an ack that will not come. Everything else, the bulk of a storm once Kafka is back, is
published at once, beside the replay.

:meth:`TrapBacklog.replay` publishes the spool oldest first, in batches, the very key and
value the live path would have sent (so the same event ids, counted once downstream), and
removes records only once Kafka acknowledged them. A failed batch marks Kafka away and is
tried again after a pause that doubles up to ``MAX_PAUSE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from engine import metrics
from engine.contract.topics import SNMP_TRAPS, TICKET_EVENTS
from engine.errors import PublishError
from engine.ingest.snmp.spool import Appended, SpooledRecord, TrapSpool
from engine.metrics import HoldReason

log = logging.getLogger(__name__)
REPLAY_BATCH = 500
# A spooled record under a key with this prefix is a notification's audit record, for
# snmp.traps.v1; every other one is a ticket event, for tickets.events.v1.
AUDIT_KEY_PREFIX = b"audit\x00"
FIRST_PAUSE_SECONDS = 0.5
MAX_PAUSE_SECONDS = 5.0


class ManyPublisher(Protocol):
    async def publish_many(
        self, topic: str, records: list[tuple[bytes | None, bytes]]
    ) -> list[PublishError | None]: ...


class TrapBacklog:
    """The spool, what decides which events go to it, and the replay out of it."""

    def __init__(self, spool: TrapSpool, publisher: ManyPublisher) -> None:
        self._spool = spool
        self._publisher = publisher
        self._kafka_away = False
        self._appended = asyncio.Event()

    @property
    def kafka_away(self) -> bool:
        return self._kafka_away

    @property
    def idle(self) -> bool:
        """Nothing spooled: every event may go to Kafka directly."""
        return self._spool.empty

    def reason_to_hold(self, key: bytes) -> HoldReason | None:
        """Why an event under ``key`` (its ticket) must go to the spool, or None."""
        if self._spool.empty:
            return None
        if self._kafka_away:
            return HoldReason.KAFKA_UNAVAILABLE
        if self._spool.holds(key):
            return HoldReason.BEHIND_SPOOL
        return None

    def kafka_failed(self) -> None:
        self._kafka_away = True

    def hold(self, records: list[tuple[bytes, bytes]], reason: HoldReason) -> Appended:
        """Spool records in order, now (no await: nothing can overtake them), then call
        :meth:`synced`. Those the spool cannot take are dropped, and counted."""
        appended = self._spool.append(records)
        if appended.kept:
            metrics.SNMP_SPOOLED.labels(reason).inc(appended.kept)
            self._appended.set()
        return appended

    def hold_audit(self, records: list[tuple[bytes, bytes]]) -> None:
        """Spool audit records (snmp.traps.v1) Kafka did not take; replayed there."""
        appended = self.hold(
            [(AUDIT_KEY_PREFIX + key, value) for key, value in records],
            HoldReason.KAFKA_UNAVAILABLE,
        )
        if appended.dropped:
            log.warning("trap spool: %d audit records dropped (%s)", appended.dropped,
                        appended.reason)  # fmt: skip

    async def synced(self) -> None:
        """fsync what :meth:`hold` wrote, off the event loop."""
        await asyncio.to_thread(self._spool.syncer())

    async def replay(self, stop: asyncio.Event) -> None:
        """Publish the spool, oldest first, until ``stop``; waits while it is empty."""
        woken_by_stop = asyncio.ensure_future(self._wake_when(stop))
        pause = FIRST_PAUSE_SECONDS
        while not stop.is_set():
            oldest = self._spool.oldest()
            if oldest is None:
                self._appended.clear()
                if not stop.is_set():
                    await self._appended.wait()
                continue
            number, read = oldest
            if await self._publish(number, read.records, stop):
                pause = FIRST_PAUSE_SECONDS
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            pause = min(pause * 2, MAX_PAUSE_SECONDS)
        await woken_by_stop

    async def _wake_when(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._appended.set()

    async def _publish(
        self, number: int, records: tuple[SpooledRecord, ...], stop: asyncio.Event
    ) -> bool:
        """Publish one segment's records a batch at a time; False at the first failure."""
        for start in range(0, len(records), REPLAY_BATCH):
            if stop.is_set():
                return True
            batch = records[start : start + REPLAY_BATCH]
            outcomes = await self._publish_where_they_belong(batch)
            acked = next((i for i, failure in enumerate(outcomes) if failure), len(batch))
            # Only a prefix counts: a later record acked after an earlier failure is
            # published again with it, under the same event id.
            self._spool.acknowledge(number, batch[:acked])
            metrics.SNMP_SPOOL_REPLAYED.inc(acked)
            if acked < len(batch):
                if not self._kafka_away:
                    log.warning("replaying the trap spool: %s", outcomes[acked])
                self._kafka_away = True
                return False
            if self._kafka_away:
                log.warning("Kafka takes trap events again; %d left in the spool",
                            self._spool.records)  # fmt: skip
            self._kafka_away = False
        return True

    async def _publish_where_they_belong(
        self, batch: tuple[SpooledRecord, ...]
    ) -> list[PublishError | None]:
        """Ticket events to tickets.events.v1, audit records to snmp.traps.v1; the outcomes
        in the batch's order."""
        audit = [i for i, record in enumerate(batch) if record.key.startswith(AUDIT_KEY_PREFIX)]
        if not audit:
            return await self._publisher.publish_many(
                TICKET_EVENTS, [(record.key, record.value) for record in batch]
            )
        is_audit = set(audit)
        events = [i for i in range(len(batch)) if i not in is_audit]
        outcomes: list[PublishError | None] = [None] * len(batch)
        for topic, positions, strip in (
            (TICKET_EVENTS, events, 0),
            (SNMP_TRAPS, audit, len(AUDIT_KEY_PREFIX)),
        ):
            if not positions:
                continue
            published = await self._publisher.publish_many(
                topic, [(batch[i].key[strip:], batch[i].value) for i in positions]
            )
            for position, outcome in zip(positions, published, strict=True):
                outcomes[position] = outcome
        return outcomes
