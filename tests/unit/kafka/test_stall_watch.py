"""The stall check of decision 5 (engine.kafka.faust_app.StallWatch): records dropped by
faust's stream are read again in the process first, and only a second stall with nothing
processed since ends it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import NoReturn

import pytest

from engine.kafka import faust_app
from engine.kafka.faust_app import StallWatch
from engine.kafka.watchdog import EXIT_STALLED, IdleClock

TOPIC = "tickets.events.v1"


@dataclass(frozen=True)
class Partition:
    topic: str
    partition: int


@dataclass
class FakeConsumer:
    highwater: int = 10
    _committed_offset: dict[Partition, int] = field(
        default_factory=lambda: {Partition(TOPIC, 0): 7}
    )
    seeks: int = 0

    def assignment(self) -> set[Partition]:
        return {Partition(TOPIC, 0)}

    async def highwaters(self, *partitions: Partition) -> dict[Partition, int]:
        return dict.fromkeys(partitions, self.highwater)

    async def perform_seek(self) -> None:
        self.seeks += 1


@dataclass
class FakeApp:
    consumer: FakeConsumer = field(default_factory=FakeConsumer)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Exited(Exception):
    pass


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    codes: list[int] = []

    def exit_at_once(code: int) -> NoReturn:
        codes.append(code)
        raise Exited

    monkeypatch.setattr(faust_app, "_exit_at_once", exit_at_once)
    return codes


def watched() -> tuple[FakeApp, Clock, IdleClock, StallWatch]:
    app = FakeApp()
    clock = Clock()
    idle = IdleClock(now=clock, interval=10.0)
    idle.progressed()
    return app, clock, idle, StallWatch(app, TOPIC, idle, "processor")  # type: ignore[arg-type]


def checks_every_ten_seconds(clock: Clock, watch: StallWatch, seconds: int) -> None:
    for _ in range(seconds // 10):
        clock.now += 10
        asyncio.run(watch.check())


def test_a_first_stall_reads_the_records_again_in_the_process(exits: list[int]) -> None:
    app, clock, _, watch = watched()
    checks_every_ten_seconds(clock, watch, 20)
    assert app.consumer.seeks == 1
    assert exits == []


def test_a_stall_with_nothing_processed_since_the_seek_ends_the_process(
    exits: list[int],
) -> None:
    app, clock, _, watch = watched()
    checks_every_ten_seconds(clock, watch, 20)
    with pytest.raises(Exited):
        checks_every_ten_seconds(clock, watch, 20)
    assert app.consumer.seeks == 1
    assert exits == [EXIT_STALLED]


def test_a_stall_after_progress_since_the_seek_is_a_new_one(exits: list[int]) -> None:
    app, clock, idle, watch = watched()
    checks_every_ten_seconds(clock, watch, 20)
    clock.now += 1
    idle.progressed()  # the records came again and were handled
    checks_every_ten_seconds(clock, watch, 20)
    assert app.consumer.seeks == 2
    assert exits == []


def test_nothing_waiting_past_the_commit_is_no_stall(exits: list[int]) -> None:
    app, clock, _, watch = watched()
    app.consumer.highwater = 7
    checks_every_ten_seconds(clock, watch, 60)
    assert app.consumer.seeks == 0
    assert exits == []
