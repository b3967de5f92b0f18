"""faust's stream and app as far as ``engine.kafka.faust_app.handle_batches`` reads and
tells them: a stream that hands over given batches of records, holes and all, as faust
0.15.3 does after some rebalances."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import yarl
from faust.types import TP

from engine.kafka.faust_app import StreamRecord, handle_batches


@dataclass(eq=False)
class FakeMessage:
    tp: TP
    offset: int
    key: bytes | None
    value: bytes | None
    generation_id: int = 1
    acked: bool = False


@dataclass
class FakeEvent:
    message: FakeMessage


@dataclass
class FakeConsumer:
    """faust's consumer, as far as the engine reads and tells it."""

    _committed_offset: dict[TP, int | None] = field(default_factory=dict)
    _unacked_messages: set[Any] = field(default_factory=set)
    gaps: list[tuple[TP, int, int]] = field(default_factory=list)

    def ack(self, message: FakeMessage) -> bool:
        return True

    async def seek_to_committed(self) -> dict[TP, int]:
        return {}

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        return dict.fromkeys(partitions, 0)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        self.gaps.append((tp, offset_from, offset_to))


class FakeSignal:
    def connect(self, receiver: Any) -> None:
        pass


@dataclass
class FakeConf:
    broker: list[yarl.URL]
    id: str = "skipped-records"


@dataclass
class FakeFlow:
    def is_active(self) -> bool:
        return True


@dataclass
class FakeApp:
    conf: FakeConf
    consumer: FakeConsumer = field(default_factory=FakeConsumer)
    flow_control: FakeFlow = field(default_factory=FakeFlow)
    consumer_generation_id: int = 1
    on_partitions_revoked: FakeSignal = field(default_factory=FakeSignal)


@dataclass
class FakeChannel:
    topics: tuple[str, ...]


@dataclass
class SkippingStream:
    """Hands over the given batches of a partition's records, as faust would."""

    app: FakeApp
    batches: list[list[FakeEvent]]
    channel: FakeChannel = field(default_factory=lambda: FakeChannel(("tickets.events.v1",)))

    async def take_events(self, max_events: int, within: float) -> AsyncIterator[list[FakeEvent]]:
        for batch in self.batches:
            yield batch


def handled_batches(stream: SkippingStream) -> list[list[StreamRecord]]:
    """What ``handle_batches`` hands to its handler, batch by batch."""
    handled: list[list[StreamRecord]] = []

    async def handle(records: Sequence[StreamRecord]) -> None:
        handled.append(list(records))

    asyncio.run(handle_batches(stream, handle, "test", contiguous=True))
    return handled


def offsets_of(batches: list[list[StreamRecord]]) -> list[int]:
    return [record.offset for batch in batches for record in batch]
