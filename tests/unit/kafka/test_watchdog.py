from engine.kafka.watchdog import Skipped, skipped_records, stalled_partitions


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
