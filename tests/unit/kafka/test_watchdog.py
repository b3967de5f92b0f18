from dataclasses import dataclass

from engine.kafka.watchdog import (
    IdleClock,
    Skipped,
    skipped_records,
    stalled_partitions,
    with_skipped_in_order,
)


def test_a_worker_is_stalled_only_when_idle_with_records_past_its_commit() -> None:
    highwaters = {"p0": 5, "p1": 2, "p2": 0}
    committed = {"p0": 5, "p1": 1, "p2": None}

    assert stalled_partitions(committed, highwaters, idle_seconds=30) == ["p1"]
    assert stalled_partitions(committed, highwaters, idle_seconds=5) == []
    assert stalled_partitions({"p0": 5, "p1": 2}, highwaters, idle_seconds=30) == []


def test_records_that_follow_one_another_skip_nothing() -> None:
    holes, following = skipped_records([("p0", 5), ("p1", 0), ("p0", 6)], {"p0": 5})
    assert holes == []
    assert following == {"p0": 7, "p1": 1}


def test_a_record_past_the_next_expected_one_is_a_hole() -> None:
    holes, following = skipped_records([("p0", 102), ("p0", 103)], {"p0": 77})
    assert holes == [Skipped("p0", 77, 102)]
    assert following == {"p0": 104}


def test_a_replayed_record_is_no_hole_and_does_not_move_the_expectation_back() -> None:
    holes, following = skipped_records([("p0", 3), ("p0", 4)], {"p0": 10})
    assert holes == []
    assert following == {"p0": 10}


def test_a_hole_inside_a_batch_is_found() -> None:
    holes, _ = skipped_records([("p0", 1), ("p0", 2), ("p0", 9)], {})
    assert holes == [Skipped("p0", 3, 9)]


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_idle_clock_counts_from_the_last_progress_and_not_before_the_first() -> None:
    clock = FakeTime()
    idle = IdleClock(clock, interval=10)
    assert idle.idle_seconds() is None
    idle.progressed()
    for _ in range(3):
        clock.now += 10
        seconds = idle.idle_seconds()
    assert seconds == 30


def test_time_the_process_did_not_run_is_not_idleness() -> None:
    clock = FakeTime()
    idle = IdleClock(clock, interval=10)
    idle.progressed()
    clock.now += 10
    assert idle.idle_seconds() == 10
    clock.now += 25  # stopped (SIGSTOP) between two checks
    assert idle.idle_seconds() == 0
    clock.now += 10
    assert idle.idle_seconds() == 10


def test_an_answer_kafka_gave_only_after_an_outage_starts_the_clock_again() -> None:
    clock = FakeTime()
    idle = IdleClock(clock, interval=10)
    idle.progressed()
    for _ in range(3):
        clock.now += 10
        idle.idle_seconds()
    asked_at = idle.now()
    clock.now += 67  # the check awaited Kafka's answer for the whole outage
    assert idle.restarted_after_a_long_wait(asked_at)
    clock.now += 10
    assert idle.idle_seconds() == 10


def test_a_prompt_answer_leaves_the_clock_running() -> None:
    clock = FakeTime()
    idle = IdleClock(clock, interval=10)
    idle.progressed()
    clock.now += 30
    asked_at = idle.now()
    clock.now += 0.5
    assert not idle.restarted_after_a_long_wait(asked_at)
    clock.now += 9.5
    assert idle.idle_seconds() == 40


@dataclass(frozen=True)
class At:
    tp: str
    offset: int


def test_records_read_for_a_hole_go_just_before_the_record_after_it() -> None:
    handed_over = [At("p0", 1), At("p1", 7), At("p0", 5), At("p0", 6), At("p1", 9)]
    holes = {
        Skipped("p0", 2, 5): [At("p0", 2), At("p0", 3), At("p0", 4)],
        Skipped("p1", 8, 9): [At("p1", 8)],
    }

    ordered = with_skipped_in_order(handed_over, holes)

    assert [(r.tp, r.offset) for r in ordered] == [
        ("p0", 1), ("p1", 7), ("p0", 2), ("p0", 3), ("p0", 4), ("p0", 5), ("p0", 6),
        ("p1", 8), ("p1", 9),
    ]  # fmt: skip


def test_a_batch_without_holes_is_handed_on_as_it_came() -> None:
    handed_over = [At("p0", 3), At("p0", 4)]
    assert with_skipped_in_order(handed_over, {}) == handed_over
