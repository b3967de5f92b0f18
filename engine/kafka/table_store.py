"""Where a table whose changelog its owner writes itself keeps its rows between starts.

The processor writes each ticket's state record to ``tickets.state.v1`` itself (the
table's changelog, decision 2) and awaits it with its batch (decision 3); faust never
sends that record, so it never learns its offset. Two stores
(``ENGINE_PROCESSOR_STORE``, decision 52):

- ``memory``: faust's memory store. Every start reads the whole changelog again: start-up
  time and memory grow with every ticket ever opened.
- ``rocksdict``: faust's RocksDB store through ``rocksdict``, one database per changelog
  partition under the app's data directory. A row is written there only once Kafka
  acknowledged its changelog record, in one atomic write with that record's offset
  (faust's "persisted offset"), so a restart reads the changelog only past it, and the
  local copy never holds what Kafka does not.

Either way the owner writes through :func:`stage` (the row is visible to reads at once)
and calls :func:`keep_acknowledged` once its sends are acknowledged.

A local copy far behind its changelog (a first start, a partition taken over from another
process) is read with a consumer of its own before faust's recovery, which hands every
record through its stream machinery one at a time (decision 67).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, cast

import faust
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP, EventT

from engine import metrics
from engine.kafka.catch_up import caught_up
from engine.kafka.consumer import new_aio_consumer, running
from engine.kafka.faust_app import bootstrap_of

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# faust's defaults (64 MiB memtables, three of them, a 2 GiB block cache) are for each
# partition's database: sized for a server of its own, not for six partitions on a
# machine the broker and the other components share.
ROCKSDB_OPTIONS: dict[str, Any] = {
    "write_buffer_size": 8 * MIB,
    "max_write_buffer_number": 2,
    "target_file_size_base": 32 * MIB,
    "block_cache_size": 8 * MIB,
}

# How long an assignment waits for the changelog's end offsets (to check the local copies
# against them) before it goes on without the check.
END_OFFSETS_TIMEOUT_SECONDS = 10.0

# A partition at least this many records behind its changelog's end is read in bulk before
# faust's recovery (which takes about 0.3 ms a record: 2,000 records, well under a second).
BULK_READ_MIN_RECORDS = 2_000
BULK_FETCH_BYTES = 16 * MIB
BULK_PARTITION_FETCH_BYTES = 4 * MIB
BULK_POLL_MS = 1000
BULK_POLL_RECORDS = 5_000
# faust gives each step of its recovery broker_request_timeout (90 s) before it goes on
# without it; the bulk read stops well before, and faust reads what is left.
BULK_READ_SHARE_OF_DEADLINE = 2 / 3


class TableStore(StrEnum):
    MEMORY = "memory"
    ROCKSDICT = "rocksdict"


class AcknowledgedStore(RocksDBStore):
    """faust's RocksDB store, written only with rows whose changelog record Kafka has
    acknowledged; rows staged before that are read from memory."""

    def __init__(self, url: Any, app: Any, table: Any, **kwargs: Any) -> None:
        super().__init__(url, app, table, driver="rocksdict", **kwargs)
        self._unacknowledged: dict[bytes, bytes] = {}
        self._staged: list[tuple[bytes, bytes, asyncio.Future[Any]]] = []

    def stage(self, key: bytes, value: bytes, sent: asyncio.Future[Any]) -> None:
        self._unacknowledged[key] = value
        self._staged.append((key, value, sent))

    def keep_acknowledged(self) -> int:
        """Write the staged rows whose changelog record is acknowledged to their
        partition's database, each partition's rows and its new persisted offset in one
        atomic write. A row whose send failed is dropped: reads see the stored one again.
        Returns how many rows were written."""
        staged, self._staged = self._staged, []
        topic = self.table.changelog_topic.get_topic_name()
        standbys = self.app.assignor.assigned_standbys()
        batches: dict[int, Any] = {}
        offsets: dict[int, int] = {}
        written = 0
        for key, value, sent in staged:
            if self._unacknowledged.get(key) is value:
                del self._unacknowledged[key]
            if not sent.done() or sent.cancelled() or sent.exception() is not None:
                continue
            partition, offset = _partition_and_offset(sent.result())
            if partition not in self._dbs or TP(topic, partition) in standbys:
                continue  # revoked meanwhile: its owner reads the record from the changelog
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = self._write_batch()
            batch.put(key, value)
            written += 1
            self._key_index[key] = partition
            offsets[partition] = max(offset, offsets.get(partition, -1))
        for partition, batch in batches.items():
            persisted = self.persisted_offset(TP(topic, partition))
            if persisted is None or offsets[partition] > persisted:
                batch.put(self.offset_key, str(offsets[partition]).encode())
            self._dbs[partition].write(batch)
        return written

    async def assign_partitions(self, table: Any, tps: set[TP], generation_id: int = 0) -> None:
        await super().assign_partitions(table, tps, generation_id)
        _read_far_behind_copies_in_bulk_first(cast(Any, self.app.tables).recovery)
        owned = [tp for tp in tps if tp.topic in table.changelog_topic.topics]
        owned = [tp for tp in owned if tp.partition in self._dbs]
        if not owned:
            return
        try:
            async with asyncio.timeout(END_OFFSETS_TIMEOUT_SECONDS):
                highwaters = await self.app.consumer.highwaters(*owned)
        except (KafkaError, TimeoutError) as error:
            log.warning("table %s: end offsets unknown (%s)", self.table_name, error)
            return
        self.forget_copies_ahead_of(highwaters)

    def forget_copies_ahead_of(self, highwaters: Mapping[TP, int | None]) -> list[TP]:
        """Empty each partition's local copy that holds an offset the changelog does not
        have (the topic was deleted and created again, or its broker lost data), so that
        it is read again from the changelog instead of faust's recovery stopping the
        process at every start. (A topic created again that has already grown past the
        local offset cannot be told apart: delete the processor's data directory then.)"""
        forgotten = []
        for tp, end in highwaters.items():
            persisted = self.persisted_offset(tp) if tp.partition in self._dbs else None
            if persisted is None or end is None or persisted < end:
                continue
            log.warning(
                "table %s: the local copy of %s[%d] ends at offset %d, the topic at %d; "
                "reading the partition again from the changelog",
                self.table_name, tp.topic, tp.partition, persisted, end,
            )  # fmt: skip
            self._dbs.pop(tp.partition).close()
            shutil.rmtree(self.partition_path(tp.partition), ignore_errors=True)
            self._db_for_partition(tp.partition)
            forgotten.append(tp)
        return forgotten

    async def read_in_bulk(
        self, tps: set[TP], ends: Mapping[TP, int | None] | None, interrupted: Callable[[], bool]
    ) -> int:
        """Read the partitions of ``tps`` whose local copy is far enough behind, up to
        their end offsets (``ends``, or those they have now), into their databases: each
        fetched batch and its last offset in one atomic write, as faust's recovery writes
        them. Stops early, keeping what it wrote, when ``interrupted`` (a new rebalance)
        or when a partition is no longer this process's. Returns how many records it
        wrote; Kafka errors are the caller's (faust's recovery then reads the rest)."""
        owned = [tp for tp in tps if tp.partition in self._dbs]
        if ends is None:
            ends = await self.app.consumer.highwaters(*owned) if owned else {}
        persisted = {tp: self.persisted_offset(tp) for tp in owned}
        starts = bulk_read_starts(persisted, ends, BULK_READ_MIN_RECORDS)
        if not starts:
            return 0
        consumer = new_aio_consumer(
            bootstrap_of(self.app),
            auto_offset_reset="earliest",
            fetch_max_bytes=BULK_FETCH_BYTES,
            max_partition_fetch_bytes=BULK_PARTITION_FETCH_BYTES,
        )
        written = 0
        try:
            async with running(consumer):
                partitions = [TopicPartition(tp.topic, tp.partition) for tp in starts]
                last_offsets = [int(ends[tp] or 0) for tp in starts]
                log.info(
                    "table %s: reading %s in bulk, %d records behind",
                    self.table_name, ", ".join(f"[{tp.partition}]" for tp in starts),
                    sum(int(ends[tp] or 0) - start for tp, start in starts.items()),
                )  # fmt: skip
                began = time.monotonic()
                consumer.assign(partitions)
                for tp in partitions:
                    consumer.seek(tp, starts[TP(tp.topic, tp.partition)])
                while not interrupted() and not caught_up(
                    [await consumer.position(tp) for tp in partitions], last_offsets
                ):
                    fetched = await consumer.getmany(
                        timeout_ms=BULK_POLL_MS, max_records=BULK_POLL_RECORDS
                    )
                    for tp, records in fetched.items():
                        if tp.partition not in self._dbs:
                            return written
                        end = int(ends[TP(tp.topic, tp.partition)] or 0)
                        written += self._write_restored(tp.partition, records, end)
                seconds = time.monotonic() - began
                log.info(
                    "table %s: read %d records in bulk in %.1fs (%.0f a second)",
                    self.table_name, written, seconds,
                    written / seconds if seconds > 0 else 0.0,
                )  # fmt: skip
        finally:
            metrics.TABLE_ROWS_RESTORED.inc(written)
            metrics.TABLE_ROWS_RESTORED_IN_BULK.inc(written)
        return written

    def _write_restored(self, partition: int, records: list[Any], end: int) -> int:
        batch = self._write_batch()
        last = None
        count = 0
        for record in records:
            if record.offset >= end:
                break
            if record.value is None:
                batch.delete(record.key)
            else:
                batch.put(record.key, record.value)
            self._key_index.pop(record.key, None)
            last = record.offset
            count += 1
        if last is None:
            return 0
        batch.put(self.offset_key, str(last).encode())
        self._dbs[partition].write(batch)
        return count

    def _write_batch(self) -> Any:
        import rocksdict

        return rocksdict.WriteBatch(raw_mode=True)

    def _set(self, key: bytes, value: bytes | None) -> None:
        raise TypeError(
            f"table {self.table_name!r}: rows are written with stage() and kept once Kafka "
            "acknowledged their changelog record"
        )

    def _get(self, key: bytes) -> bytes | None:
        value = self._unacknowledged.get(key)
        return value if value is not None else super()._get(key)

    def _contains(self, key: bytes) -> bool:
        return key in self._unacknowledged or super()._contains(key)

    def _del(self, key: bytes) -> None:
        self._unacknowledged.pop(key, None)
        super()._del(key)


def _read_far_behind_copies_in_bulk_first(recovery: Any) -> None:
    """Have faust's recovery read the local copies far behind their changelog in bulk
    before it reads the rest itself.

    Each recovery (faust 0.15.3) builds the end offsets of its active partitions, then the
    offsets to read them from (``_build_offsets``, from the persisted ones), reads them,
    then seeks its standby partitions (``_seek_offsets``) and resumes the streams. The
    bulk read of the active partitions goes just before their offsets are built, that of
    the standby ones just before they are sought: from the recovery's own task, not in
    the rebalance callback, during which aiokafka sends no heartbeat. A new rebalance
    cancels it (faust waits for each step or the next rebalance, whichever is first);
    what it wrote stays, with its offset. It stops in time for faust's own deadline on
    the step, and faust reads whatever is left."""
    if getattr(recovery, "_bulk_read_installed", False):
        return
    build_offsets = recovery._build_offsets
    seek_offsets = recovery._seek_offsets

    async def read_actives_then_build_offsets(
        consumer: Any, tps: set[TP], offsets: Any, title: str
    ) -> None:
        if title == "active":
            highwaters = recovery.active_highwaters
            ends = {tp: end + 1 for tp, end in highwaters.items() if end is not None}
            await _read_in_bulk(recovery, recovery.actives_for_table, ends, offsets)
        await build_offsets(consumer, tps, offsets, title)

    async def read_standbys_then_seek(
        consumer: Any, tps: set[TP], offsets: Any, title: str
    ) -> None:
        if title == "standby":
            await _read_in_bulk(recovery, recovery.standbys_for_table, None, offsets)
        await seek_offsets(consumer, tps, offsets, title)

    recovery._build_offsets = read_actives_then_build_offsets
    recovery._seek_offsets = read_standbys_then_seek
    recovery._bulk_read_installed = True


async def _read_in_bulk(
    recovery: Any,
    partitions_of_tables: Mapping[Any, set[TP]],
    ends: Mapping[TP, int] | None,
    offsets: Any,
) -> None:
    """Read the partitions of ``partitions_of_tables`` far behind in bulk, up to ``ends``
    (None: their end offsets now), and have faust's recovery go on from where it ended
    (``offsets``: the recovery's offsets of those partitions)."""
    deadline = float(recovery.app.conf.broker_request_timeout) * BULK_READ_SHARE_OF_DEADLINE
    for table, tps in list(partitions_of_tables.items()):
        store = table.data
        if not isinstance(store, AcknowledgedStore):
            continue
        try:
            async with asyncio.timeout(deadline):
                await store.read_in_bulk(set(tps), ends, recovery.signal_recovery_start.is_set)
        except TimeoutError:
            log.warning(
                "table %s: bulk read stopped after %.0fs; faust reads the rest",
                store.table_name,
                deadline,
            )
        except KafkaError as error:
            log.warning(
                "table %s: bulk read failed (%s); faust reads the rest", store.table_name, error
            )
        finally:
            for tp in tps:
                persisted = store.persisted_offset(tp) if tp.partition in store._dbs else None
                if persisted is not None:
                    offsets[tp] = max(persisted, offsets.get(tp) or -1)


def bulk_read_starts(
    persisted: Mapping[TP, int | None], highwaters: Mapping[TP, int | None], minimum: int
) -> dict[TP, int]:
    """The partitions whose local copy (``persisted``: the offset of the last record
    applied, None for none) is at least ``minimum`` records behind their end offset
    (``highwaters``), each with the offset to read from."""
    starts = {}
    for tp, end in highwaters.items():
        last = persisted.get(tp)
        start = 0 if last is None else last + 1
        if end is not None and end - start >= minimum:
            starts[tp] = start
    return starts


def _partition_and_offset(metadata: Any) -> tuple[int, int]:
    """faust's and aiokafka's RecordMetadata both have these two."""
    return int(metadata.partition), int(metadata.offset)


class _AcknowledgedTable(faust.Table[bytes, bytes]):
    def _new_store(self) -> AcknowledgedStore:
        return AcknowledgedStore(
            "rocksdb://",
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_type=self.value_type,
            value_serializer=self.value_serializer,
            loop=self.loop,
            options=dict(ROCKSDB_OPTIONS),
        )


async def _count_restored(event: EventT[Any]) -> None:
    metrics.TABLE_ROWS_RESTORED.inc()


def changelogged_table(app: faust.App, store: str, name: str, **kwargs: Any) -> Any:
    """A table of the app in ``store`` (a :class:`TableStore`); its owner writes its
    changelog records itself. Records read back from the changelog are counted
    (``ticketing_table_rows_restored_total``)."""
    kwargs.setdefault("on_changelog_event", _count_restored)
    if TableStore(store) is TableStore.MEMORY:
        return app.Table(name, **kwargs)
    table = _AcknowledgedTable(app, name=name, beacon=app.tables.beacon, **kwargs)
    return app.tables.add(table)


def stage(table: Any, key: bytes, value: bytes, sent: asyncio.Future[Any]) -> None:
    """``value`` is ``key``'s row from now on; ``sent`` is its changelog record's send."""
    store = table.data
    if isinstance(store, AcknowledgedStore):
        store.stage(key, value, sent)
    else:
        store[key] = value


def keep_acknowledged(table: Any) -> None:
    """Once the sends of the staged rows are acknowledged: keep them in the store."""
    store = table.data
    if isinstance(store, AcknowledgedStore):
        store.keep_acknowledged()
