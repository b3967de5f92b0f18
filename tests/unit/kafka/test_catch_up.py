from engine.kafka.catch_up import caught_up


def test_a_reader_is_caught_up_once_every_position_reaches_its_end_offset() -> None:
    assert caught_up([3, 7], [3, 7])
    assert not caught_up([3, 6], [3, 7])
    assert caught_up([], [])


def test_an_empty_partition_is_caught_up_at_once() -> None:
    assert caught_up([0], [0])
