"""The trap spool without a broker: records framed and read back, a torn tail skipped,
order kept across segments and restarts, the cap, and the replay that removes only what
Kafka acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from engine.errors import PublishError
from engine.ingest.snmp.replay import TrapBacklog
from engine.ingest.snmp.spool import SpoolError, TrapSpool, frame, read_frames
from engine.metrics import HoldReason
from engine.settings import Settings

RECORDS = [(f"T-{n % 3}".encode(), f'{{"n":{n}}}'.encode()) for n in range(10)]


def dropped(reason: str) -> float:
    value = REGISTRY.get_sample_value("ticketing_snmp_spool_dropped_total", {"reason": reason})
    return value or 0.0


_opened: list[TrapSpool] = []


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[TrapSpool]:
    yield opened(tmp_path / "spool")
    while _opened:
        _opened.pop().close()


def opened(directory: Path, max_bytes: int = 1 << 20, segment_bytes: int = 50) -> TrapSpool:
    spool = TrapSpool(directory, max_bytes=max_bytes, segment_bytes=segment_bytes)
    spool.open()
    _opened.append(spool)
    return spool


def reopened(spool: TrapSpool) -> TrapSpool:
    """The same directory as the next process finds it."""
    spool.close()
    return opened(spool.directory)


def everything(spool: TrapSpool) -> list[tuple[bytes, bytes]]:
    """What a replay would publish, oldest first, acknowledging as it goes."""
    out: list[tuple[bytes, bytes]] = []
    while (oldest := spool.oldest()) is not None:
        number, read = oldest
        out.extend((record.key, record.value) for record in read.records)
        spool.acknowledge(number, read.records)
    return out


def test_frames_read_back_as_written() -> None:
    data = b"".join(frame(key, value) for key, value in RECORDS)
    read = read_frames(data)
    assert [(r.key, r.value) for r in read.records] == RECORDS
    assert read.torn_bytes == 0
    assert read.records[-1].end == len(data)


@pytest.mark.parametrize("cut", range(1, len(frame(*RECORDS[-1]))))
def test_a_torn_last_record_is_skipped_and_the_rest_kept(cut: int) -> None:
    whole = b"".join(frame(key, value) for key, value in RECORDS)
    read = read_frames(whole[:-cut])
    assert [(r.key, r.value) for r in read.records] == RECORDS[:-1]
    assert read.torn_bytes == len(frame(*RECORDS[-1])) - cut


@pytest.mark.parametrize("tail", [b"\x00" * 64, b"T1\x00\x00\x00\x05\x00\x00\x00\x00abcde"])
def test_zeros_or_a_bad_checksum_after_the_last_record_are_not_records(tail: bytes) -> None:
    whole = b"".join(frame(key, value) for key, value in RECORDS)
    read = read_frames(whole + tail)
    assert len(read.records) == len(RECORDS)
    assert read.torn_bytes == len(tail)


def test_replay_order_is_append_order_across_segments_and_restarts(spool: TrapSpool) -> None:
    assert spool.append(RECORDS[:4]).kept == 4
    spool = reopened(spool)  # a new process writes a new segment after the old ones
    for record in RECORDS[4:]:
        assert spool.append([record]).kept == 1
    assert len(list(spool.directory.glob("*.seg"))) > 2  # 50-byte segments
    assert spool.records == 10
    assert everything(spool) == RECORDS
    assert spool.empty
    assert not list(spool.directory.glob("*.seg"))


def test_a_key_is_held_while_one_of_its_records_waits(spool: TrapSpool) -> None:
    spool.append(RECORDS[:2])  # T-0, T-1
    assert spool.holds(b"T-0") and spool.holds(b"T-1") and not spool.holds(b"T-2")
    number, read = spool.oldest() or (0, None)
    assert read is not None
    spool.acknowledge(number, read.records[:1])
    assert not spool.holds(b"T-0") and spool.holds(b"T-1")


def test_acknowledged_records_stay_gone_after_a_restart(spool: TrapSpool) -> None:
    spool.append(RECORDS[:3])
    number, read = spool.oldest() or (0, None)
    assert read is not None
    spool.acknowledge(number, read.records[:2])
    spool = reopened(spool)
    assert everything(spool) == RECORDS[2:3]


def test_a_torn_tail_left_by_a_crash_is_skipped_counted_and_not_appended_to(
    spool: TrapSpool,
) -> None:
    spool.append(RECORDS[:2])
    (segment,) = spool.directory.glob("*.seg")
    with segment.open("ab") as file:
        file.write(frame(*RECORDS[2])[:-3])  # the process died mid-write
    before = dropped("torn")
    spool = reopened(spool)
    assert dropped("torn") == before + 1
    spool.append(RECORDS[3:4])
    assert everything(spool) == [*RECORDS[:2], RECORDS[3]]
    assert dropped("torn") == before + 1  # counted once, however often it is read


def test_when_full_the_newest_are_dropped_and_counted(spool: TrapSpool) -> None:
    record_bytes = len(frame(*RECORDS[0]))
    spool = opened(spool.directory.with_name("small"), max_bytes=3 * record_bytes)
    before = dropped("full")
    appended = spool.append(RECORDS[:5])
    assert (appended.kept, appended.dropped, appended.reason) == (3, 2, "full")
    assert dropped("full") == before + 2
    assert spool.size_bytes == 3 * record_bytes
    assert everything(spool) == RECORDS[:3]
    assert spool.append(RECORDS[5:6]).kept == 1  # room again once replayed


def test_a_second_receiver_cannot_use_the_same_spool(spool: TrapSpool) -> None:
    other = TrapSpool(spool.directory, max_bytes=1 << 20)
    with pytest.raises(SpoolError, match="in use by another SNMP receiver"):
        other.open()


class FlakyKafka:
    """Acknowledges records, except the first ``refuse`` it is given; ``has`` is set
    once it holds ``expected`` records."""

    def __init__(self, expected: int, refuse: int = 0) -> None:
        self.refuse = refuse
        self.expected = expected
        self.stored: list[tuple[bytes | None, bytes]] = []
        self.has = asyncio.Event()

    async def publish_many(
        self, topic: str, records: list[tuple[bytes | None, bytes]]
    ) -> list[PublishError | None]:
        outcomes: list[PublishError | None] = []
        for record in records:
            if self.refuse > 0:
                self.refuse -= 1
                outcomes.append(PublishError("down"))
            else:
                self.stored.append(record)
                outcomes.append(None)
        if len(self.stored) >= self.expected:
            self.has.set()
        return outcomes


async def replayed(backlog: TrapBacklog, kafka: FlakyKafka) -> None:
    stop = asyncio.Event()
    task = asyncio.ensure_future(backlog.replay(stop))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(kafka.has.wait(), 30)
    stop.set()
    await task


def test_the_replay_removes_only_acknowledged_records_and_keeps_order(
    spool: TrapSpool,
) -> None:
    kafka = FlakyKafka(expected=19, refuse=1)  # the first record fails, the next nine not
    backlog = TrapBacklog(spool, kafka)

    async def scenario() -> None:
        assert backlog.hold(RECORDS, HoldReason.KAFKA_UNAVAILABLE).kept == 10
        await backlog.synced()
        await replayed(backlog, kafka)

    asyncio.run(scenario())
    # Only a prefix of a batch counts as acknowledged: the nine are published again, under
    # the same event ids, after the first.
    assert kafka.stored == RECORDS[1:] + RECORDS
    assert spool.empty and not backlog.kafka_away
    assert not list(spool.directory.glob("*.seg"))


def test_what_waits_for_the_spool(spool: TrapSpool) -> None:
    kafka = FlakyKafka(expected=1, refuse=1)
    backlog = TrapBacklog(spool, kafka)
    assert backlog.idle and backlog.reason_to_hold(b"T-0") is None
    backlog.hold(RECORDS[:1], HoldReason.KAFKA_UNAVAILABLE)  # T-0
    assert backlog.reason_to_hold(b"T-0") is HoldReason.BEHIND_SPOOL
    assert backlog.reason_to_hold(b"T-1") is None  # another ticket goes live
    backlog.kafka_failed()
    assert backlog.reason_to_hold(b"T-1") is HoldReason.KAFKA_UNAVAILABLE
    asyncio.run(replayed(backlog, kafka))
    assert backlog.reason_to_hold(b"T-0") is None
    assert backlog.reason_to_hold(b"T-1") is None


def test_the_spool_lives_in_the_state_dir_unless_set(tmp_path: Path) -> None:
    assert Settings(state_dir=tmp_path).snmp_spool_path == tmp_path / "snmp-spool"
    elsewhere = tmp_path / "disk" / "spool"
    assert Settings(state_dir=tmp_path, snmp_spool_dir=elsewhere).snmp_spool_path == elsewhere
    with pytest.raises(ValidationError, match="snmp_spool_max_bytes"):
        Settings(snmp_spool_max_bytes=1000)


def test_an_unusable_spool_directory_stops_the_receiver_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(SpoolError, match=r"trap spool .*file/spool is not usable"):
        TrapSpool(tmp_path / "file" / "spool", max_bytes=1 << 20).open()


def test_a_write_the_disk_refuses_is_counted_and_the_next_one_starts_afresh(
    spool: TrapSpool, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(fd: int, blob: bytes) -> None:
        os.write(fd, blob[:7])
        raise OSError(errno.ENOSPC, "No space left on device")

    before = dropped("write_error")
    with monkeypatch.context() as patched:
        patched.setattr("engine.ingest.snmp.spool._write_all", disk_full)
        appended = spool.append(RECORDS[:2])
    assert (appended.kept, appended.dropped, appended.reason) == (0, 2, "write_error")
    assert dropped("write_error") == before + 2
    assert spool.append(RECORDS[2:3]).kept == 1
    assert everything(spool) == RECORDS[2:3]


def test_an_offset_left_without_its_segment_does_not_skip_a_new_one(spool: TrapSpool) -> None:
    spool.append(RECORDS[:3])
    number, read = spool.oldest() or (0, None)
    assert read is not None
    spool.acknowledge(number, read.records[:2])
    spool.close()
    (segment,) = spool.directory.glob("*.seg")
    segment.unlink()  # the process died after removing the segment, before its offset
    spool = opened(spool.directory)
    spool.append(RECORDS[3:5])
    assert everything(spool) == RECORDS[3:5]
