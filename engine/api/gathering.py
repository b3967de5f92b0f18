"""Concurrent requests' events in one produce request.

The producer keeps one produce request in flight to a broker and sends what arrived
meanwhile together once it is answered, so while it is busy the events of concurrent
requests share produce requests by themselves. When it falls idle, though, the first event
to arrive leaves alone, and those right behind it wait for that round trip before they
share the next. Each produce request costs the broker and the producer far more than an
event in it (on a 2-core machine, about 1.5 ms of the broker's CPU: docs/benchmarks.md), so
an idle publisher here holds the first event until as many have arrived as were in flight
together at the peak of the last busy stretch, or until ``hold_seconds`` passed, and lets
them leave together. A lone caller (a peak of one) is never held; after a burst, at most
the first event of the next one waits the full hold.

Nothing changes in what a caller is told: ``publish`` returns only once Kafka acknowledged
its event, and raises what the wrapped publisher raises; and held events reach the producer
in the order they arrived in.
"""

from __future__ import annotations

import asyncio

from engine.kafka.publisher import Publisher


class GatheringPublisher:
    def __init__(self, publisher: Publisher, hold_seconds: float) -> None:
        self._publisher = publisher
        self._hold = hold_seconds
        self._unacknowledged = 0
        self._peak = 0  # most events unacknowledged at once since the last idle moment
        self._expected = 1  # the peak of the last busy stretch
        self._gate: asyncio.Event | None = None
        self._gathered = 0

    async def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        if self._gate is not None:
            self._gathered += 1
            if self._gathered >= self._expected:
                self._gate.set()
            if self._gate.is_set():
                await asyncio.sleep(0)  # behind those gathered before: they leave in order
            else:
                await self._gate.wait()
        elif self._unacknowledged == 0 and self._expected > 1 and self._hold > 0:
            await self._held()
        self._unacknowledged += 1
        self._peak = max(self._peak, self._unacknowledged)
        try:
            await self._publisher.publish(topic, key, value)
        finally:
            self._unacknowledged -= 1
            if self._unacknowledged == 0:
                self._expected, self._peak = self._peak, 0

    async def _held(self) -> None:
        gate = self._gate = asyncio.Event()
        self._gathered = 1
        timer = asyncio.get_running_loop().call_later(self._hold, gate.set)
        try:
            await gate.wait()
        finally:  # cancelled too: the events gathered behind this one go on
            timer.cancel()
            gate.set()
            self._gate = None
