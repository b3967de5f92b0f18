"""The ledger in the consume loop: a batch Kafka refused counts again when it is re-read."""

from __future__ import annotations

from datetime import UTC, datetime

from kafka.errors import KafkaTimeoutError

from engine.clock import FrozenClock
from engine.contract import parse_record, to_json
from engine.contract.topics import ENTITLEMENT_BALANCES, TICKET_ACTIVITY
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
