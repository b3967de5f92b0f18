"""After a rebalance every partition goes to its committed offset, or to its first record
when it has none (engine.kafka.faust_app.seek_each_to_committed_or_the_start)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from engine.kafka.faust_app import seek_each_to_committed_or_the_start


@dataclass
class FakeCoordinator:
    """The group's committed offsets, as the coordinator answers an OffsetFetch."""

    committed: dict[TopicPartition, int]
    requests: list[list[TopicPartition]] = field(default_factory=list)

    async def fetch_committed_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        self.requests.append(list(partitions))
        return {
            tp: OffsetAndMetadata(self.committed[tp], "")
            for tp in partitions
            if tp in self.committed
        }


@dataclass
class FakeClient:
    """The parts of an ``AIOKafkaConsumer`` the seek uses."""

    assigned: set[TopicPartition]
    _coordinator: FakeCoordinator
    first_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    first_offset_requests: list[list[TopicPartition]] = field(default_factory=list)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def beginning_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        self.first_offset_requests.append(list(partitions))
        return {tp: self.first_offsets.get(tp, 0) for tp in partitions}

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        raise AssertionError("a reset leaves the partition without a position until it is done")


def states(partition: int) -> TopicPartition:
    return TopicPartition("states", partition)


def client_with(committed: dict[TopicPartition, int], *assigned: TopicPartition) -> FakeClient:
    return FakeClient(set(assigned), FakeCoordinator(committed))


def test_a_committed_partition_is_sought_to_its_committed_offset() -> None:
    client = client_with({states(0): 120}, states(0))
    assert asyncio.run(seek_each_to_committed_or_the_start(client)) == {states(0): 120}
    assert client.positions == {states(0): 120}
    assert client.first_offset_requests == []


def test_a_partition_never_committed_or_committed_at_0_is_read_from_its_first_record() -> None:
    """aiokafka leaves such a partition where it was, past the records fetched and skipped
    during the rebalance. It is given its first offset as its position at once, not a reset
    (until a reset is done the partition has no position, and faust's livelock check fails
    on that)."""
    client = client_with({states(2): 0, states(3): -1}, states(1), states(2), states(3))
    client.first_offsets = {states(1): 40, states(2): 0, states(3): 7}
    committed = asyncio.run(seek_each_to_committed_or_the_start(client))
    assert committed == {states(1): None, states(2): 0, states(3): None}
    assert client.positions == {states(1): 40, states(2): 0, states(3): 7}
    assert len(client.first_offset_requests) == 1
    assert sorted(client.first_offset_requests[0]) == [states(1), states(2), states(3)]


def test_the_committed_offsets_of_every_partition_are_asked_in_one_request() -> None:
    assigned = [states(partition) for partition in range(6)] + [TopicPartition("events", 0)]
    client = client_with({tp: 10 for tp in assigned}, *assigned)
    asyncio.run(seek_each_to_committed_or_the_start(client))
    assert len(client._coordinator.requests) == 1
    assert sorted(client._coordinator.requests[0]) == sorted(assigned)
    assert client.positions == {tp: 10 for tp in assigned}
    assert client.first_offset_requests == []


def test_nothing_assigned_asks_nothing() -> None:
    client = client_with({})
    assert asyncio.run(seek_each_to_committed_or_the_start(client)) == {}
    assert client._coordinator.requests == []
