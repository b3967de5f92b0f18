"""Only records handed over to an agent count as processed (engine.kafka.faust_app)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from engine.kafka.faust_app import ack_only_handed_over


@dataclass
class FakeMessage:
    offset: int
    generation_id: int
    acked: bool = False

    def __hash__(self) -> int:
        return self.offset


@dataclass
class FakeFlow:
    active: bool = True

    def is_active(self) -> bool:
        return self.active


@dataclass
class FakeThread:
    sought_to_beginning: list[str] = field(default_factory=list)

    async def seek_to_beginning(self, *partitions: str) -> None:
        self.sought_to_beginning.extend(partitions)


@dataclass
class FakeConsumer:
    counted: list[int] = field(default_factory=list)
    _unacked_messages: set[Any] = field(default_factory=set)
    committed: dict[str, int | None] = field(default_factory=dict)
    _thread: FakeThread = field(default_factory=FakeThread)

    def ack(self, message: FakeMessage) -> bool:
        message.acked = True
        self._unacked_messages.discard(message)
        self.counted.append(message.offset)
        return True

    async def seek_to_committed(self) -> dict[str, int | None]:
        """aiokafka's: seeks only the partitions committed above 0."""
        return dict(self.committed)


@dataclass
class FakeApp:
    consumer: FakeConsumer = field(default_factory=FakeConsumer)
    flow_control: FakeFlow = field(default_factory=FakeFlow)
    consumer_generation_id: int = 7


def guarded() -> FakeApp:
    """An app whose consumer counts only acknowledgements of records handed over."""
    app = FakeApp()
    ack_only_handed_over(app)  # type: ignore[arg-type]
    return app


def tracked(app: FakeApp, *messages: FakeMessage) -> None:
    app.consumer._unacked_messages.update(messages)


def test_a_record_handed_over_in_the_current_generation_counts() -> None:
    app = guarded()
    message = FakeMessage(5, generation_id=7)
    tracked(app, message)
    assert app.consumer.ack(message) is True
    assert app.consumer.counted == [5]


def test_a_record_of_an_earlier_generation_is_released_but_not_counted() -> None:
    app = guarded()
    stale = FakeMessage(5, generation_id=6)
    tracked(app, stale)
    assert app.consumer.ack(stale) is False
    assert app.consumer.counted == []
    assert stale.acked
    assert not app.consumer._unacked_messages  # a rebalance does not wait for it


def test_a_record_acknowledged_while_a_rebalance_is_under_way_is_not_counted() -> None:
    app = guarded()
    app.flow_control.active = False
    message = FakeMessage(5, generation_id=7)
    assert app.consumer.ack(message) is False
    assert app.consumer.counted == []


def test_after_a_rebalance_a_partition_never_committed_is_read_from_its_first_record() -> None:
    """aiokafka leaves a partition without a committed offset (or committed at 0) where it
    was, past the records fetched and skipped during the rebalance."""
    app = guarded()
    app.consumer.committed = {"states-0": 120, "states-1": None, "states-2": 0}
    committed = asyncio.run(app.consumer.seek_to_committed())
    assert committed == {"states-0": 120, "states-1": None, "states-2": 0}
    assert app.consumer._thread.sought_to_beginning == ["states-1", "states-2"]


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


@dataclass
class FakeEvent:
    message: Any


@dataclass
class BatchMessage:
    tp: TP
    offset: int
    acked: bool = False

    def __hash__(self) -> int:
        return hash((self.tp, self.offset))


@dataclass
class RewindingConsumer:
    _committed_offset: dict[TP, int] = field(default_factory=dict)
    _gap: dict[TP, str] = field(default_factory=dict)
    _unacked_messages: set[Any] = field(default_factory=set)
    sought: list[tuple[TP, int]] = field(default_factory=list)

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        return dict.fromkeys(partitions, 0)

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.sought.extend(partitions.items())


def batch_of(*records: tuple[TP, int]) -> list[FakeEvent]:
    return [FakeEvent(BatchMessage(tp, offset)) for tp, offset in records]


def test_a_partition_with_skipped_records_is_read_again_from_the_first_of_them(
    monkeypatch: Any,
) -> None:
    from collections import Counter

    from engine.kafka import faust_app

    exits: list[int] = []
    monkeypatch.setattr(faust_app, "_exit_at_once", lambda code: exits.append(code))
    p0, p1 = TP("events", 0), TP("events", 1)
    consumer = RewindingConsumer({p0: 154}, {p0: "a compaction gap"})
    app = FakeApp(consumer=consumer)  # type: ignore[arg-type]
    rewinds: Counter[tuple[Any, int]] = Counter()
    batch = batch_of((p0, 161), (p1, 3), (p0, 162))

    handed, following = asyncio.run(
        faust_app._checked_contiguous(app, batch, {p1: 3}, "triage", rewinds)  # type: ignore[arg-type]
    )

    assert [event.message.offset for event in handed] == [3]
    assert following == {p0: 154, p1: 4}
    assert consumer.sought == [(p0, 154)]
    assert p0 not in consumer._gap  # faust may not count 154 to 160 as done
    released = [event.message for event in batch if event.message.tp == p0]
    assert all(message.acked for message in released)  # let go, never acknowledged
    assert exits == []

    faust: Any = app
    for _ in range(faust_app.MAX_REWINDS - 1):
        asyncio.run(
            faust_app._checked_contiguous(faust, batch_of((p0, 161)), {p0: 154}, "triage", rewinds)
        )
    assert exits == []
    # Found again after as many reads: the process exits, to read it from its commit.
    asyncio.run(
        faust_app._checked_contiguous(faust, batch_of((p0, 161)), {p0: 154}, "triage", rewinds)
    )
    assert exits == [faust_app.EXIT_BATCH_FAILED]
