"""The watchdogs of the faust workers (decision 5), their pure parts: a worker idle while
records wait past its committed offset (``stalled_partitions``) first reads them again,
then exits to be restarted; the processor finds the records faust skipped
(``skipped_records``) and hands them over in their place (``with_skipped_in_order``).

faust-streaming 0.15.3 can mark a record fetched during a rebalance as read without
handing it to the agent. The processor and the SLA worker check for it every
``STALL_CHECK_SECONDS`` (``engine.kafka.faust_app.StallWatch``): the first stall seeks
back to the committed offsets, a second with nothing processed since exits with
``EXIT_STALLED``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

STALL_CHECK_SECONDS = 10.0
STALL_AFTER_SECONDS = 20.0
EXIT_STALLED = 75
# A check that comes this many intervals after the previous one finds a process that did
# not run meanwhile.
PAUSED_AFTER_INTERVALS = 1.5


def stalled_partitions(
    committed: Mapping[Any, int | None],
    highwaters: Mapping[Any, int],
    idle_seconds: float,
    stall_after: float = STALL_AFTER_SECONDS,
) -> list[Any]:
    """The owned partitions with records past the committed offset, when nothing has been
    processed for ``stall_after`` seconds; empty otherwise."""
    if idle_seconds < stall_after:
        return []
    return [tp for tp, high in highwaters.items() if (committed.get(tp) or 0) < high]


class IdleClock:
    """Seconds without progress, as the stall check judges them. Time the process did not
    run at all (SIGSTOP, a paused VM, a starved machine) is not idleness: a check that
    comes much later than its interval after the previous one starts the clock again, so
    the worker gets the chance to catch up before it is judged."""

    def __init__(
        self,
        now: Callable[[], float] = time.monotonic,
        interval: float = STALL_CHECK_SECONDS,
    ) -> None:
        self._now = now
        self._interval = interval
        self._progress: float | None = None
        self._checked: float | None = None

    @property
    def started(self) -> bool:
        return self._progress is not None

    def progressed(self) -> None:
        self._progress = self._now()

    @property
    def progressed_at(self) -> float | None:
        """When the last progress was recorded (None before any)."""
        return self._progress

    def idle_seconds(self) -> float | None:
        """At each check: seconds since the last progress (None before any)."""
        now = self._now()
        paused = self._checked is not None and (
            now - self._checked > PAUSED_AFTER_INTERVALS * self._interval
        )
        self._checked = now
        if self._progress is None:
            return None
        if paused:
            self._progress = now
        return now - self._progress

    def now(self) -> float:
        return self._now()

    def restarted_after_a_long_wait(self, asked_at: float) -> bool:
        """After an answer from Kafka asked for at ``asked_at``: True, with the clock started
        again, when the answer took longer than a check interval. Kafka was away (its
        clients retry until it is back), so the idleness so far was not the worker's; it
        gets the time to catch up before it is judged."""
        now = self._now()
        if now - asked_at <= self._interval:
            return False
        self._progress = self._checked = now
        return True


@dataclass(frozen=True)
class Skipped:
    """Records of ``partition`` from offset ``first`` up to ``found`` (excluded) that were
    never handed over."""

    partition: Any
    first: int
    found: int


def skipped_records(
    offsets: Sequence[tuple[Any, int]], expected: Mapping[Any, int]
) -> tuple[list[Skipped], dict[Any, int]]:
    """The holes in ``offsets`` (partition and offset of each record, in the order handed
    over) against the next offset ``expected`` of each partition, and the next offsets
    expected after them. Kafka numbers the records of a topic that is neither compacted
    nor written in transactions one by one: a record past the next expected one means the
    records in between were skipped. A record at or before it (a replay) is no hole."""
    following = dict(expected)
    holes = []
    for partition, offset in offsets:
        wanted = following.get(partition)
        if wanted is not None and offset > wanted:
            holes.append(Skipped(partition, wanted, offset))
        following[partition] = max(offset + 1, wanted or 0)
    return holes, following


class Positioned(Protocol):
    """A record as the watchdog sees it: its partition and offset."""

    @property
    def tp(self) -> Any: ...

    @property
    def offset(self) -> int: ...


R = TypeVar("R", bound=Positioned)


def with_skipped_in_order(records: Sequence[R], skipped: Mapping[Skipped, Sequence[R]]) -> list[R]:
    """``records`` (as handed over) with the records read for each hole of ``skipped``
    put just before the record that came after the hole, so that each partition's records
    are handled in their order."""
    if not skipped:
        return list(records)
    before = {(hole.partition, hole.found): read for hole, read in skipped.items()}
    ordered: list[R] = []
    for record in records:
        ordered.extend(before.pop((record.tp, record.offset), ()))
        ordered.append(record)
    return ordered
