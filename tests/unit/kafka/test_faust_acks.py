"""Only records handed over to an agent count as processed (engine.kafka.faust_app)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.kafka.faust_app import ack_only_handed_over


@dataclass
class FakeMessage:
    offset: int
    generation_id: int
    acked: bool = False

    def __hash__(self) -> int:
        return self.offset


@dataclass
class FakeFlow:
    active: bool = True

    def is_active(self) -> bool:
        return self.active


@dataclass
class FakeConsumer:
    counted: list[int] = field(default_factory=list)
    _unacked_messages: set[Any] = field(default_factory=set)

    def ack(self, message: FakeMessage) -> bool:
        message.acked = True
        self._unacked_messages.discard(message)
        self.counted.append(message.offset)
        return True


@dataclass
class FakeApp:
    consumer: FakeConsumer = field(default_factory=FakeConsumer)
    flow_control: FakeFlow = field(default_factory=FakeFlow)
    consumer_generation_id: int = 7


def guarded() -> FakeApp:
    """An app whose consumer counts only acknowledgements of records handed over."""
    app = FakeApp()
    ack_only_handed_over(app)  # type: ignore[arg-type]
    return app


def tracked(app: FakeApp, *messages: FakeMessage) -> None:
    app.consumer._unacked_messages.update(messages)


def test_a_record_handed_over_in_the_current_generation_counts() -> None:
    app = guarded()
    message = FakeMessage(5, generation_id=7)
    tracked(app, message)
    assert app.consumer.ack(message) is True
    assert app.consumer.counted == [5]


def test_a_record_of_an_earlier_generation_is_released_but_not_counted() -> None:
    app = guarded()
    stale = FakeMessage(5, generation_id=6)
    tracked(app, stale)
    assert app.consumer.ack(stale) is False
    assert app.consumer.counted == []
    assert stale.acked
    assert not app.consumer._unacked_messages  # a rebalance does not wait for it


def test_a_record_acknowledged_while_a_rebalance_is_under_way_is_not_counted() -> None:
    app = guarded()
    app.flow_control.active = False
    message = FakeMessage(5, generation_id=7)
    assert app.consumer.ack(message) is False
    assert app.consumer.counted == []
