"""The follower of compacted topics against a fake aiokafka consumer: catch-up by
position, the latest value per key, live topics, and reconnecting with backoff and jitter."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from engine.kafka.follower import Follower, UnknownTopicError
from engine.kafka.retry import Attempts, Backoff


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Cluster:
    def __init__(self, partitions: dict[str, int]) -> None:
        self.partitions = partitions

    async def fetch_all_metadata(self) -> Any:
        return self

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions.get(topic, 0)))


class FakeConsumer:
    """Logs of records by partition; ``ends`` may lie past the last record (a commit
    marker, a compacted record), as Kafka's end offsets do."""

    def __init__(self, logs: dict[TopicPartition, list[Rec]], ends: dict[TopicPartition, int]):
        self.logs, self.ends = logs, ends
        self._client = Cluster({tp.topic: tp.partition + 1 for tp in logs})
        self.positions: dict[TopicPartition, int] = {}
        self.stopped = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.positions = dict.fromkeys(partitions, 0)

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self.positions[tp] = 0

    async def seek_to_end(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self.positions[tp] = self.ends[tp]

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp] for tp in partitions}

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def getmany(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Rec]]:
        await asyncio.sleep(0)
        batches: dict[TopicPartition, list[Rec]] = {}
        for tp, position in self.positions.items():
            records = [r for r in self.logs[tp] if r.offset >= position]
            if records:
                batches[tp] = records
            # past the records, and past offsets that hold none (markers, compacted)
            self.positions[tp] = max(position, self.ends[tp])
        return batches


RULES = TopicPartition("rules", 0)
FEED = TopicPartition("feed", 0)


def serving(consumer: FakeConsumer) -> Callable[[str], Any]:
    return lambda _: consumer


def run_until_caught_up(follower: Follower) -> None:
    async def main() -> None:
        task = asyncio.create_task(follower.run())
        try:
            await asyncio.wait_for(follower.caught_up.wait(), 5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def test_the_catch_up_ends_at_the_end_offset_even_when_no_record_holds_it() -> None:
    records = [Rec("rules", 0, 0, b"k", b"one"), Rec("rules", 0, 1, b"k", b"two")]
    consumer = FakeConsumer({RULES: records}, {RULES: 3})  # offset 2: a commit marker
    seen: list[bytes | None] = []
    follower = Follower(
        "test", "x", ["rules"], lambda r: seen.append(r.value), new_consumer=serving(consumer)
    )

    run_until_caught_up(follower)

    assert seen == [b"one", b"two"]
    assert follower.caught_up.is_set() and consumer.stopped


def test_a_follower_of_the_current_value_gets_only_the_last_record_of_each_key() -> None:
    records = [
        Rec("rules", 0, 0, b"a", b"a1"),
        Rec("rules", 0, 1, b"b", b"b1"),
        Rec("rules", 0, 2, b"a", b"a2"),
    ]
    consumer = FakeConsumer({RULES: records}, {RULES: 3})
    seen: list[bytes | None] = []
    follower = Follower(
        "test",
        "x",
        ["rules"],
        lambda r: seen.append(r.value),
        latest_only=True,
        new_consumer=serving(consumer),
    )

    run_until_caught_up(follower)

    assert seen == [b"b1", b"a2"]


def test_a_live_topic_is_read_from_its_end() -> None:
    consumer = FakeConsumer(
        {RULES: [Rec("rules", 0, 0, b"k", b"kept")], FEED: [Rec("feed", 0, 0, None, b"old")]},
        {RULES: 1, FEED: 1},
    )
    seen: list[bytes | None] = []
    follower = Follower(
        "test",
        "x",
        ["rules"],
        lambda r: seen.append(r.value),
        live=["feed"],
        new_consumer=serving(consumer),
    )

    run_until_caught_up(follower)

    assert seen == [b"kept"]


def test_reconnecting_waits_longer_after_each_failure_then_starts_over_from_the_start() -> None:
    consumer = FakeConsumer({RULES: [Rec("rules", 0, 0, b"k", b"v")]}, {RULES: 1})
    failures = 4
    pauses: list[float] = []

    def new_consumer(_: str) -> Any:
        if len(pauses) < failures:
            raise KafkaConnectionError("Kafka away")
        return consumer

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    seen: list[bytes | None] = []
    follower = Follower(
        "test", "x", ["rules"], lambda r: seen.append(r.value),
        backoff=Backoff(first_seconds=1.0, max_seconds=5.0), new_consumer=new_consumer,
        sleep=sleep, draw=lambda: 0.0,
    )  # fmt: skip

    run_until_caught_up(follower)

    assert pauses == [1.0, 2.0, 4.0, 5.0]
    assert seen == [b"v"]
    assert follower.attempts.failures == 0  # a catch-up resets the backoff


def test_an_unknown_topic_is_a_failure_retried_not_an_empty_catch_up() -> None:
    consumer = FakeConsumer({RULES: []}, {RULES: 0})
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        raise asyncio.CancelledError

    follower = Follower(
        "test", "x", ["missing"], lambda r: None, sleep=sleep, new_consumer=serving(consumer)
    )

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(follower.run())
    assert len(pauses) == 1 and not follower.caught_up.is_set()
    with pytest.raises(UnknownTopicError):
        asyncio.run(_partitions_of(consumer, "missing"))


async def _partitions_of(consumer: FakeConsumer, topic: str) -> Any:
    from engine.kafka.follower import _partitions

    return await _partitions(consumer, [topic])


def test_backoff_grows_to_its_ceiling_and_jitter_shortens_it_by_at_most_its_share() -> None:
    backoff = Backoff(first_seconds=1.0, factor=2.0, max_seconds=30.0, jitter=0.5)
    assert [backoff.ceiling(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.ceiling(10_000) == 30  # no overflow after a long outage
    for n in range(1, 8):
        for draw in (0.0, 0.25, 0.999999):
            pause = backoff.pause(n, lambda d=draw: d)  # type: ignore[misc]
            assert backoff.ceiling(n) / 2 <= pause <= backoff.ceiling(n)
    assert backoff.pause(3, lambda: 0.0) == 4.0
    assert backoff.pause(3, lambda: 0.5) == 3.0


def test_jitter_spreads_the_pauses_of_processes_that_failed_together() -> None:
    pauses = {Attempts(Backoff()).failed() for _ in range(50)}
    assert len(pauses) > 1
    assert all(0.5 <= pause <= 1.0 for pause in pauses)


def test_a_backoff_that_does_not_grow_or_a_jitter_beyond_the_pause_is_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(first_seconds=10, max_seconds=1)
    with pytest.raises(ValueError):
        Backoff(jitter=1.5)
