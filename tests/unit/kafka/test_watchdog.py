from engine.kafka.watchdog import stalled_partitions


def test_a_worker_is_stalled_only_when_idle_with_records_past_its_commit() -> None:
    highwaters = {"p0": 5, "p1": 2, "p2": 0}
    committed = {"p0": 5, "p1": 1, "p2": None}

    assert stalled_partitions(committed, highwaters, idle_seconds=30) == ["p1"]
    assert stalled_partitions(committed, highwaters, idle_seconds=5) == []
    assert stalled_partitions({"p0": 5, "p1": 2}, highwaters, idle_seconds=30) == []
