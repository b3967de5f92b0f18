"""The processor table's persistent store (engine.kafka.table_store, decision 52): a row
reaches the disk only with its acknowledged changelog record, in one write with that
record's offset, and a store opened again on the same directory has both."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP

from engine.kafka.faust_app import engine_app, raw_topic
from engine.kafka.table_store import (
    AcknowledgedStore,
    bulk_read_starts,
    changelogged_table,
    keep_acknowledged,
    stage,
)
from engine.settings import Settings

CHANGELOG = "unit.tickets.state.v1"
PARTITIONS = 2


class Metadata:
    """What a send resolves to: faust's and aiokafka's RecordMetadata both have these."""

    def __init__(self, partition: int, offset: int) -> None:
        self.partition = partition
        self.offset = offset


def table_in(directory: Path, store: str = "rocksdict") -> Any:
    settings = Settings(state_dir=directory, partitions=PARTITIONS, app_id="unit-store")
    app = engine_app(settings, settings.app_id, "processor")
    return changelogged_table(
        app, store, "tickets", key_type=bytes, value_type=bytes, partitions=PARTITIONS,
        changelog_topic=raw_topic(app, CHANGELOG, PARTITIONS), use_partitioner=True,
    )  # fmt: skip


def assigned(table: Any) -> AcknowledgedStore:
    """The store with both changelog partitions assigned, as a rebalance leaves it."""
    store = table.data
    assert isinstance(store, AcknowledgedStore)
    tps = {TP(CHANGELOG, partition) for partition in range(PARTITIONS)}
    # faust's part of the assignment: the end offsets' check needs a broker.
    asyncio.run(RocksDBStore.assign_partitions(store, table, tps))
    return store


def closed(store: AcknowledgedStore) -> None:
    asyncio.run(store.stop())  # drops the databases: their lock is released


def acked(loop: asyncio.AbstractEventLoop, partition: int, offset: int) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = loop.create_future()
    future.set_result(Metadata(partition, offset))
    return future


def failed(loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = loop.create_future()
    future.set_exception(TimeoutError("no ack"))
    return future


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_a_staged_row_is_read_at_once_and_kept_with_its_offset_once_acknowledged(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    table = table_in(tmp_path)
    store = assigned(table)
    stage(table, b"T-A", b"state 1", acked(loop, 1, 41))

    assert table.get(b"T-A") == b"state 1"  # the batch's next event sees it
    assert store.persisted_offset(TP(CHANGELOG, 1)) is None

    keep_acknowledged(table)
    closed(store)

    reopened = assigned(table_in(tmp_path))
    assert reopened[b"T-A"] == b"state 1"
    assert reopened.persisted_offset(TP(CHANGELOG, 1)) == 41
    assert reopened.persisted_offset(TP(CHANGELOG, 0)) is None
    closed(reopened)


def test_a_row_whose_send_failed_never_reaches_the_disk_and_reads_fall_back(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    table = table_in(tmp_path)
    store = assigned(table)
    stage(table, b"T-A", b"state 1", acked(loop, 0, 7))
    keep_acknowledged(table)

    stage(table, b"T-A", b"state 2", failed(loop))
    assert table.get(b"T-A") == b"state 2"
    keep_acknowledged(table)

    assert table.get(b"T-A") == b"state 1"
    assert store.persisted_offset(TP(CHANGELOG, 0)) == 7
    closed(store)


def test_the_last_row_of_a_key_and_the_highest_offset_of_a_partition_are_kept(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    table = table_in(tmp_path)
    store = assigned(table)
    stage(table, b"T-A", b"state 1", acked(loop, 0, 10))
    stage(table, b"T-B", b"other 1", acked(loop, 1, 3))
    stage(table, b"T-A", b"state 2", acked(loop, 0, 11))
    keep_acknowledged(table)

    assert store[b"T-A"] == b"state 2"
    assert store[b"T-B"] == b"other 1"
    assert store.persisted_offset(TP(CHANGELOG, 0)) == 11
    assert store.persisted_offset(TP(CHANGELOG, 1)) == 3
    closed(store)


def test_a_row_of_a_partition_revoked_meanwhile_is_left_to_its_new_owner(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    table = table_in(tmp_path)
    store = assigned(table)
    stage(table, b"T-A", b"state 1", acked(loop, 1, 5))
    store.revoke_partitions(table, {TP(CHANGELOG, 1)})
    keep_acknowledged(table)

    closed(store)
    reopened = assigned(table_in(tmp_path))
    assert b"T-A" not in reopened
    assert reopened.persisted_offset(TP(CHANGELOG, 1)) is None
    closed(reopened)


def test_rows_are_written_through_stage_only(tmp_path: Path) -> None:
    table = table_in(tmp_path)
    store = assigned(table)
    with pytest.raises(TypeError, match="stage"):
        store[b"T-A"] = b"state 1"
    closed(store)


def test_the_memory_store_takes_a_staged_row_at_once(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    table = table_in(tmp_path, "memory")
    stage(table, b"T-A", b"state 1", acked(loop, 0, 1))
    keep_acknowledged(table)
    assert table.get(b"T-A") == b"state 1"
    assert not isinstance(table.data, AcknowledgedStore)


def test_a_local_copy_ahead_of_its_changelog_is_forgotten(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    table = table_in(tmp_path)
    store = assigned(table)
    stage(table, b"T-A", b"state 1", acked(loop, 0, 30))
    stage(table, b"T-B", b"other 1", acked(loop, 1, 30))
    keep_acknowledged(table)

    # Partition 0's topic ends at 12 (created again); partition 1's goes on past 30.
    forgotten = store.forget_copies_ahead_of({TP(CHANGELOG, 0): 12, TP(CHANGELOG, 1): 31})

    assert forgotten == [TP(CHANGELOG, 0)]
    assert store.persisted_offset(TP(CHANGELOG, 0)) is None
    assert b"T-A" not in store
    assert store[b"T-B"] == b"other 1"
    assert store.persisted_offset(TP(CHANGELOG, 1)) == 30
    closed(store)


def test_only_copies_far_behind_their_changelog_are_read_in_bulk() -> None:
    a, b, c, d = (TP(CHANGELOG, n) for n in range(4))
    persisted = {a: None, b: 99, c: 5_000, d: None}
    ends = {a: 2_500, b: 2_099, c: 5_001, d: None}
    # a: never read, 2,500 records; b: 1,999 behind; c: up to date; d: end unknown
    assert bulk_read_starts(persisted, ends, 2_000) == {a: 0}
    assert bulk_read_starts(persisted, ends, 1_999) == {a: 0, b: 100}


class Record:
    def __init__(self, offset: int, key: bytes, value: bytes | None) -> None:
        self.offset = offset
        self.key = key
        self.value = value


def test_a_bulk_batch_is_written_with_its_last_offset_and_stops_at_the_end(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    table = table_in(tmp_path)
    store = assigned(table)
    stage(table, b"T-GONE", b"old", acked(loop, 0, 3))
    keep_acknowledged(table)
    records = [
        Record(4, b"T-A", b"a1"),
        Record(5, b"T-GONE", None),  # a tombstone removes the row
        Record(6, b"T-A", b"a2"),
        Record(7, b"T-B", b"b1"),  # past the end offset the read was asked for
    ]
    assert store._write_restored(0, records, end=7) == 3
    assert store[b"T-A"] == b"a2"
    assert b"T-GONE" not in store
    assert b"T-B" not in store
    assert store.persisted_offset(TP(CHANGELOG, 0)) == 6
    assert store._write_restored(0, [Record(7, b"T-B", b"b1")], end=7) == 0
    assert store.persisted_offset(TP(CHANGELOG, 0)) == 6
    closed(store)
