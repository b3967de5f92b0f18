"""The takeover bench's arithmetic: which new tickets the takeover held up, and when the
last of them was routed."""

from __future__ import annotations

import pytest

from bench.takeover import Probes


def test_the_takeover_ends_when_the_last_held_up_ticket_is_routed() -> None:
    probes = Probes(
        sent={b"before": 5.0, b"a": 10.0, b"b": 11.0, b"c": 12.0, b"lost": 13.0},
        routed={b"before": 5.1, b"a": 10.2, b"b": 30.0, b"c": 25.0},
    )
    held_up, slowest, resumed = probes.takeover(started=10.0, held_up=1.0)
    assert held_up == 2  # b and c; "before" was sent before the start
    assert slowest == 19.0
    assert resumed == 20.0  # b, routed at 30.0
    assert probes.unrouted_keys() == ["lost"]


def test_no_ticket_held_up_means_no_pause() -> None:
    probes = Probes(sent={b"a": 10.0}, routed={b"a": 10.3})
    held_up, slowest, resumed = probes.takeover(started=10.0, held_up=1.0)
    assert (held_up, resumed) == (0, 0.0)
    assert slowest == pytest.approx(0.3)
