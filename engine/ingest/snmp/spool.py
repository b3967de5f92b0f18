"""The trap spool: ``trap.received`` events Kafka did not take, kept on local disk until
the replayer (snmp_replay.py) has them acknowledged (decision 13).

- A directory of numbered segment files, each append-only. One record is a frame:
  ``b"T1"``, payload length and CRC-32 of the payload (big-endian u32 each), then the
  payload: key length (u16), the Kafka key, the Kafka value, exactly as the live path
  would have published them. Reading stops at the first frame that is incomplete or
  fails its checksum (a write torn by a crash); that tail is skipped and counted.
- A batch of records is written with one unbuffered ``write``; :meth:`TrapSpool.syncer`
  gives what fsyncs it, for the caller to run off the event loop.
- A writer never appends to a segment it did not create: a new process starts a new
  segment, so a torn frame can only be the end of a segment.
- Progress through a segment is kept in ``<segment>.done`` (the byte offset acknowledged
  by Kafka), replaced atomically; a segment is deleted once wholly acknowledged.
- Capped at ``max_bytes`` on disk: a batch that does not fit is refused record by record
  (the newest are dropped, the spool keeps the oldest), and counted.
- A lock file keeps a second receiver out of the same directory.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from engine import metrics
from engine.errors import EngineError
from engine.metrics import SpoolDropReason

log = logging.getLogger(__name__)

MAGIC = b"T1"
_HEADER = struct.Struct(">2sII")
_KEY_LENGTH = struct.Struct(">H")
SEGMENT_BYTES = 4 * 1024 * 1024
_SUFFIX = ".seg"
_DONE = ".done"


class SpoolError(EngineError):
    """The spool directory cannot be used (locked by another receiver, not writable)."""


@dataclass(frozen=True)
class SpooledRecord:
    key: bytes
    value: bytes
    end: int  # byte offset just past this record in its segment


@dataclass(frozen=True)
class SegmentRead:
    records: tuple[SpooledRecord, ...]
    torn_bytes: int  # bytes after the last whole record that are not one


def frame(key: bytes, value: bytes) -> bytes:
    payload = _KEY_LENGTH.pack(len(key)) + key + value
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def read_frames(data: bytes, start: int = 0) -> SegmentRead:
    """The whole records of ``data`` from offset ``start``, and how many bytes follow them
    that are not a whole, intact record."""
    records = []
    at = start
    while len(data) - at >= _HEADER.size:
        magic, length, crc = _HEADER.unpack_from(data, at)
        body = at + _HEADER.size
        if magic != MAGIC or length < _KEY_LENGTH.size or body + length > len(data):
            break
        payload = data[body : body + length]
        if zlib.crc32(payload) != crc:
            break
        (key_length,) = _KEY_LENGTH.unpack_from(payload)
        if _KEY_LENGTH.size + key_length > length:
            break
        key = payload[_KEY_LENGTH.size : _KEY_LENGTH.size + key_length]
        value = payload[_KEY_LENGTH.size + key_length :]
        at = body + length
        records.append(SpooledRecord(key, value, at))
    return SegmentRead(tuple(records), len(data) - at)


@dataclass(frozen=True)
class Appended:
    kept: int
    dropped: int  # the newest of the batch, counted in ticketing_snmp_spool_dropped_total
    reason: SpoolDropReason  # why they were dropped: full, write_error


@dataclass
class _Segment:
    number: int
    path: Path
    size: int
    done: int  # acknowledged offset
    pending: Counter[bytes]  # records not yet acknowledged, by key
    torn_seen: bool = False  # a torn tail, once logged and counted


class TrapSpool:
    """Segments oldest first; the last one is the one being written, until sealed."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._segments: list[_Segment] = []
        self._fd: int | None = None  # the segment being written
        self._dirty = False  # written since its last fsync
        self._new_file = False  # a segment created since the directory's last fsync
        self._unsynced: list[int] = []  # sealed segments not fsynced yet (dup'ed)
        self._pending: Counter[bytes] = Counter()
        self._lock: IO[bytes] | None = None

    # -- opening ----------------------------------------------------------------------

    def open(self) -> None:
        """Lock the directory and take stock of what a previous run left."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            lock = (self.directory / ".lock").open("ab")
        except OSError as error:
            raise SpoolError(f"trap spool {self.directory} is not usable: {error}") from error
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            lock.close()
            raise SpoolError(
                f"trap spool {self.directory} is in use by another SNMP receiver"
            ) from error
        self._lock = lock
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            self._take_stock(path)
        self._publish_gauges()

    def _take_stock(self, path: Path) -> None:
        data = path.read_bytes()
        done = _read_done(path)
        read = read_frames(data, done)
        number = int(path.name.removesuffix(_SUFFIX))
        pending = Counter(record.key for record in read.records)
        segment = _Segment(number, path, len(data), done, pending)
        _note_torn(segment, read)
        if not pending:
            _remove(path)
            return
        self._pending.update(pending)
        self._segments.append(segment)

    def close(self) -> None:
        self.seal()
        self.syncer()()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # -- what the live path asks --------------------------------------------------------

    @property
    def records(self) -> int:
        return sum(self._pending.values())

    @property
    def size_bytes(self) -> int:
        return sum(segment.size for segment in self._segments)

    def holds(self, key: bytes) -> bool:
        """Whether a record under ``key`` (a ticket) waits here: a newer one must follow it."""
        return key in self._pending

    # -- writing ----------------------------------------------------------------------

    @property
    def empty(self) -> bool:
        return not self._pending

    def append(self, records: list[tuple[bytes, bytes]]) -> Appended:
        """Write records in order with one write. Those past the cap are dropped (and
        every one after the first that does not fit, so that what is kept has no gap)."""
        written = self._write(records)
        dropped = len(records) - written
        reason = SpoolDropReason.FULL if written >= 0 else SpoolDropReason.WRITE_ERROR
        if written < 0:
            written, dropped = 0, len(records)
        if dropped:
            metrics.SNMP_SPOOL_DROPPED.labels(reason).inc(dropped)
        return Appended(written, dropped, reason)

    def _write(self, records: list[tuple[bytes, bytes]]) -> int:
        """How many records were written, or -1 when the disk refused the write."""
        frames: list[bytes] = []
        room = self._max_bytes - self.size_bytes
        for key, value in records:
            framed = frame(key, value)
            if len(framed) > room:
                break
            frames.append(framed)
            room -= len(framed)
        if not frames:
            return 0
        blob = b"".join(frames)
        try:
            segment, fd = self._writable()
            _write_all(fd, blob)
        except OSError:
            log.exception("writing %d records to the trap spool failed", len(frames))
            self.seal()  # what was half written is a torn tail: start afresh
            return -1
        self._dirty = True
        segment.size += len(blob)
        keys = Counter(key for key, _ in records[: len(frames)])
        segment.pending.update(keys)
        self._pending.update(keys)
        if segment.size >= self._segment_bytes:
            self.seal()
        self._publish_gauges()
        return len(frames)

    def _writable(self) -> tuple[_Segment, int]:
        if self._fd is not None:
            return self._segments[-1], self._fd
        number = self._segments[-1].number + 1 if self._segments else 1
        path = self.directory / f"{number:020d}{_SUFFIX}"
        _done_path(path).unlink(missing_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self._new_file = True
        self._segments.append(_Segment(number, path, 0, 0, Counter()))
        return self._segments[-1], self._fd

    def seal(self) -> None:
        """Stop writing the current segment; the next append starts a new one."""
        if self._fd is not None:
            if self._dirty:
                self._unsynced.append(os.dup(self._fd))
                self._dirty = False
            os.close(self._fd)
            self._fd = None

    def syncer(self) -> Callable[[], None]:
        """What fsyncs the records written so far, and the directory when it has a new
        segment: blocking, to run in a thread while the loop goes on."""
        descriptors, self._unsynced = self._unsynced, []
        if self._dirty and self._fd is not None:
            descriptors.append(os.dup(self._fd))
            self._dirty = False
        directory = self.directory if self._new_file else None
        self._new_file = False
        return lambda: _fsync(descriptors, directory)

    # -- replaying --------------------------------------------------------------------

    def oldest(self) -> tuple[int, SegmentRead] | None:
        """The oldest segment's records not yet acknowledged (the segment being written is
        sealed first), or None when the spool is empty."""
        if not self._segments:
            return None
        segment = self._segments[0]
        if len(self._segments) == 1:
            self.seal()
        read = read_frames(segment.path.read_bytes(), segment.done)
        _note_torn(segment, read)
        if not read.records:
            self._forget(segment)
            return self.oldest()
        return segment.number, read

    def acknowledge(self, number: int, records: tuple[SpooledRecord, ...]) -> None:
        """Kafka acknowledged ``records``, the oldest segment's next ones, in order."""
        segment = self._segments[0]
        if segment.number != number or not records:
            return
        segment.done = records[-1].end
        keys = Counter(record.key for record in records)
        segment.pending.subtract(keys)
        self._pending.subtract(keys)
        self._pending = +self._pending
        segment.pending = +segment.pending
        if segment.pending:
            _write_done(segment.path, segment.done)
        else:
            self._forget(segment)
        self._publish_gauges()

    def _forget(self, segment: _Segment) -> None:
        self._segments.remove(segment)
        self._pending.subtract(segment.pending)
        self._pending = +self._pending
        _remove(segment.path)
        self._publish_gauges()

    def _publish_gauges(self) -> None:
        metrics.SNMP_SPOOL_RECORDS.set(self.records)
        metrics.SNMP_SPOOL_BYTES.set(self.size_bytes)


def _note_torn(segment: _Segment, read: SegmentRead) -> None:
    if read.torn_bytes and not segment.torn_seen:
        segment.torn_seen = True
        log.warning("trap spool %s: %d bytes at the end are not a whole record; skipped",
                    segment.path.name, read.torn_bytes)  # fmt: skip
        metrics.SNMP_SPOOL_DROPPED.labels(SpoolDropReason.TORN).inc()


def _write_all(fd: int, blob: bytes) -> None:
    view = memoryview(blob)
    while view:
        view = view[os.write(fd, view) :]


def _fsync(descriptors: list[int], directory: Path | None) -> None:
    for descriptor in descriptors:
        try:
            os.fsync(descriptor)
        except OSError as error:
            log.warning("fsync of the trap spool failed: %s", error)
        finally:
            os.close(descriptor)
    if directory is not None:
        opened = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(opened)
        finally:
            os.close(opened)


def _done_path(segment: Path) -> Path:
    return segment.with_name(segment.name + _DONE)


def _read_done(segment: Path) -> int:
    try:
        return int(_done_path(segment).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _write_done(segment: Path, offset: int) -> None:
    """Replace the acknowledged offset atomically. Not fsynced: a lost update means the
    records are published again, under the same event ids, and counted once."""
    done = _done_path(segment)
    temporary = done.with_name(done.name + ".tmp")
    temporary.write_text(str(offset))
    os.replace(temporary, done)


def _remove(segment: Path) -> None:
    """The offset first: a crash in between leaves a segment read again from its start
    (its records count once), never an offset that a new segment would skip by."""
    for path in (_done_path(segment), segment):
        path.unlink(missing_ok=True)
