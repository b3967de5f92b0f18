"""Storm folding at the receiver: pure, with the time passed in."""

from __future__ import annotations

from datetime import timedelta

from engine.contract import AlarmTransition, TrapReceived
from engine.ingest.snmp.fold import Fold, StormFolder
from tests.unit.ingest.snmp.trap_samples import T0, link_event

WINDOW = 0.5


def down(if_index: int, n: int) -> TrapReceived:
    return link_event(up=False, if_index=if_index, request_id=n, at=T0 + timedelta(seconds=n))


def up(if_index: int, n: int) -> TrapReceived:
    return link_event(up=True, if_index=if_index, request_id=n, at=T0 + timedelta(seconds=n))


def sent(folds: list[Fold[int]]) -> list[tuple[str, AlarmTransition, int, list[int]]]:
    return [
        (fold.event().data.alarm_key, fold.event().data.transition, fold.occurrences, fold.members)
        for fold in folds
    ]


def test_the_first_notification_of_an_alarm_goes_out_at_once() -> None:
    folder: StormFolder[int] = StormFolder(WINDOW)

    ready = folder.add(down(1, 1), 1, now=10.0)

    assert [fold.occurrences for fold in ready] == [1]
    assert ready[0].event() == down(1, 1)  # one alone is itself: same id, no count
    assert folder.next_due() is None


def test_a_storm_of_one_alarm_is_one_event_a_window_counting_every_notification() -> None:
    folder: StormFolder[int] = StormFolder(WINDOW)
    first = folder.add(down(1, 0), 0, now=10.0)
    folded = [
        fold for n in range(1, 101) for fold in folder.add(down(1, n), n, now=10.0 + n / 1000)
    ]

    assert folded == []  # within the window: held
    assert folder.next_due() == 10.5
    assert folder.due(10.4) == []
    ready = folder.due(10.5)

    assert [f.occurrences for f in first + ready] == [1, 100]
    event = ready[0].event()
    assert event.data.occurrences == 100
    assert event.data.first_received_at == down(1, 1).occurred_at
    assert event.occurred_at == down(1, 100).occurred_at
    assert event.event_id not in {down(1, n).event_id for n in range(101)}
    assert ready[0].members == list(range(1, 101))


def test_alarms_fold_apart_and_a_quiet_alarm_goes_out_at_once_again() -> None:
    folder: StormFolder[int] = StormFolder(WINDOW)
    assert len(folder.add(down(1, 0), 0, now=0.0)) == 1
    assert len(folder.add(down(2, 1), 1, now=0.1)) == 1  # another alarm: its own first
    assert folder.add(down(1, 2), 2, now=0.2) == []
    assert folder.add(down(2, 3), 3, now=0.3) == []

    assert sorted(f.occurrences for f in folder.due(0.6)) == [1, 1]
    assert folder.due(5.0) == []
    assert len(folder.add(down(1, 9), 9, now=5.0)) == 1  # quiet for a window: at once


def test_a_change_of_transition_closes_the_fold_and_goes_out_at_once_in_order() -> None:
    folder: StormFolder[int] = StormFolder(WINDOW)
    folder.add(down(1, 0), 0, now=0.0)
    folder.add(down(1, 1), 1, now=0.1)
    folder.add(down(1, 2), 2, now=0.2)

    ready = folder.add(up(1, 3), 3, now=0.3)

    assert sent(ready) == [
        (down(1, 1).data.alarm_key, AlarmTransition.RAISED, 2, [1, 2]),
        (up(1, 3).data.alarm_key, AlarmTransition.CLEARED, 1, [3]),
    ]
    assert folder.next_due() is None


def test_no_window_sends_every_notification_alone() -> None:
    folder: StormFolder[int] = StormFolder(0.0)

    ready = [fold for n in range(5) for fold in folder.add(down(1, n), n, now=0.0)]

    assert [fold.occurrences for fold in ready] == [1] * 5


def test_draining_sends_what_is_folded() -> None:
    folder: StormFolder[int] = StormFolder(WINDOW)
    folder.add(down(1, 0), 0, now=0.0)
    folder.add(down(1, 1), 1, now=0.1)
    folder.add(down(1, 2), 2, now=0.2)

    assert [fold.occurrences for fold in folder.drain()] == [2]
    assert folder.open_folds == 0


def test_a_change_of_transition_after_a_sent_event_is_not_held_either() -> None:
    folder: StormFolder[int] = StormFolder(WINDOW)
    folder.add(down(1, 0), 0, now=0.0)  # sent at once; port 1 folds until 0.5

    ready = folder.add(up(1, 1), 1, now=0.1)

    assert sent(ready) == [(up(1, 1).data.alarm_key, AlarmTransition.CLEARED, 1, [1])]
    assert folder.add(up(1, 2), 2, now=0.2) == []  # the same again: folded
    assert [fold.members for fold in folder.due(0.6)] == [[2]]
