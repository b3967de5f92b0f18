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
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP, EventT

from engine import metrics

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
