"""The ledger in the consume loop: a batch Kafka refused counts again when it is re-read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError

from engine.clock import FrozenClock
from engine.contract import RecordDeadLettered, parse_record, to_json
from engine.contract.topics import DEAD_LETTERS, ENTITLEMENT_BALANCES, TICKET_ACTIVITY
from engine.entitlements.ledger import apply_event
from engine.entitlements.worker import Ledger, LedgerBatches
from engine.kafka.loop import ConsumeLoop
from tests.unit.entitlements.test_ledger import DIRECTORY, spent
from tests.unit.kafka.test_loop import Consumed, FakeConsumer, FakeProducer, Producers

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def test_a_refused_batch_is_forgotten_so_its_balance_is_published_when_read_again() -> None:
    ledger = Ledger({}, DIRECTORY, FrozenClock(NOW))
    ledger.opening_outputs()  # acme: 1 h
    log: list[str] = []
    consumer = FakeConsumer([], log)
    consumer.records = [Consumed(TICKET_ACTIVITY, 0, 0, to_json(spent(45)))]
    taking = FakeProducer(log)
    refusing = FakeProducer(log, error=KafkaTimeoutError("no ack"))
    loop = ConsumeLoop(
        "entitlements", consumer, LedgerBatches(ledger), Producers(refusing, taking),
        sleep=lambda _: None,
    )  # fmt: skip

    loop.step()  # refused: the deduction is forgotten with the batch
    assert ledger.balances["acme"].hours_left == 1.0
    loop.step()

    ((topic, key, value),) = taking.sent
    assert (topic, key) == (ENTITLEMENT_BALANCES, b"acme")
    assert parse_record(value).data.hours_left == 0.25  # type: ignore[union-attr]
    assert consumer.committed == 1


def test_a_record_that_makes_the_ledger_raise_is_a_dead_letter_and_the_next_is_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing(balance: Any, event: Any) -> Any:
        if event.event_id == "bad":
            raise ArithmeticError("a balance the ledger cannot compute")
        return apply_event(balance, event)

    monkeypatch.setattr("engine.entitlements.worker.apply_event", failing)
    ledger = Ledger({}, DIRECTORY, FrozenClock(NOW))
    ledger.opening_outputs()  # acme: 1 h
    log: list[str] = []
    consumer = FakeConsumer([], log)
    consumer.records = [
        Consumed(TICKET_ACTIVITY, 0, 0, to_json(spent(30, event="bad"))),
        Consumed(TICKET_ACTIVITY, 0, 1, to_json(spent(15, event="good"))),
    ]
    taking = FakeProducer(log)
    loop = ConsumeLoop(
        "entitlements", consumer, LedgerBatches(ledger), Producers(taking, taking),
        sleep=lambda _: None,
    )  # fmt: skip

    loop.step()

    (letter,) = [parse_record(value) for topic, _, value in taking.sent if topic == DEAD_LETTERS]
    assert isinstance(letter, RecordDeadLettered) and "cannot compute" in letter.data.reason
    assert ledger.balances["acme"].hours_left == 0.75  # only the good record counted
    assert consumer.committed == 2  # both records, past the dead-lettered one
