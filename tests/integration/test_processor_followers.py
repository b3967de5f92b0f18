"""The processor's followers of ``config.rules.v1`` and ``entitlements.balances.v1``, on a
broker of the test's own: read to the end however the topic ends, and read while a
restarted processor is still waiting to rejoin its consumer group."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from engine.contract import EmailReceived, EntitlementBalanceData, to_json
from engine.contract.topics import (
    ENTITLEMENT_BALANCES,
    RULES_CONFIG,
    RULES_KEY,
    TICKET_DECISIONS,
    TICKET_EVENTS,
)
from engine.entitlements.follower import BalancesFollower
from engine.entitlements.ledger import balance_record
from engine.ingest.mail.parse import parse_email
from engine.rules.ruleset import DEFAULT_RULES, RuleSet
from engine.settings import Settings
from engine.triage.rules_feed import RulesFollower, publish, published_record
from tests.integration.harness import (
    ProcessorProcess,
    TopicReader,
    engine_env,
    support_mail,
    wait_until,
)

FAX_RULE = """
  - id: fax-outage
    description: Published rule the restarted processor must decide with
    match: {phrases: [fax machine]}
    set: {priority: P1, category: pbx_down}
"""
RULES_NOT_READ = f"rules: {RULES_CONFIG} not read within"
BALANCES_NOT_READ = "entitlements: balances not read"


def fax_rules(directory: Path) -> Path:
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    text = text.replace("\nrules:\n", "\nrules:\n" + FAX_RULE, 1)
    path = directory / "fax.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def processors(own_broker: Settings, tmp_path: Path) -> Iterator[list[ProcessorProcess]]:
    started: list[ProcessorProcess] = []
    yield started
    for processor in started:
        processor.stop()


def fax_mail_event() -> EmailReceived:
    message = support_mail("Fax", "Our fax machine is broken", f"<{uuid.uuid4()}@acme.example>")
    return parse_email(
        bytes(message),
        mail_from="cliente@acme.example",
        rcpt_to=("soporte@support.example.com",),
        peer="127.0.0.1",
        received_at=datetime.now(UTC),
        source="test",
    )


def test_a_restarted_processor_decides_its_first_event_with_the_published_rule_set(
    own_broker: Settings, processors: list[ProcessorProcess], tmp_path: Path
) -> None:
    bootstrap = own_broker.kafka_bootstrap
    published = publish(bootstrap, fax_rules(tmp_path), datetime.now(UTC))
    env = engine_env(tmp_path / "engine", bootstrap, ENGINE_LOG_LEVEL="INFO")
    processors.append(ProcessorProcess(env, tmp_path / "first.log"))
    processors[0].wait_assigned()
    processors[0].kill()

    restarted = ProcessorProcess(env, tmp_path / "restarted.log")
    processors.append(restarted)
    event = fax_mail_event()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(TICKET_EVENTS, key=event.data.ticket_id.encode(), value=to_json(event))
    producer.flush(timeout=30)
    producer.close()
    reader = TopicReader(bootstrap, TICKET_DECISIONS)
    try:
        decision = reader.wait_for(lambda key, value: key == event.data.ticket_id, timeout=180)
    finally:
        reader.close()

    assert decision["data"]["classification"]["ruleset_version"] == published.fingerprint
    # Its join waited for the killed processor's session to expire; its followers did not.
    log = restarted.log()
    assert log.index("rules: switching") < log.index(f"Joined group '{env['ENGINE_APP_ID']}'")
    assert RULES_NOT_READ not in log
    assert BALANCES_NOT_READ not in log


async def follow_until_caught_up(follower: RulesFollower | BalancesFollower) -> None:
    task = asyncio.create_task(follower.run())
    try:
        await asyncio.wait_for(follower.caught_up.wait(), 60)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def send_in_a_transaction(bootstrap: str, topic: str, key: bytes, value: bytes) -> int:
    """The record is followed by the transaction's commit marker: an offset that holds no
    record a consumer is ever given. Returns the record's offset."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=str(uuid.uuid4()))
    await producer.start()
    try:
        async with producer.transaction():
            sent = await producer.send_and_wait(topic, key=key, value=value, partition=0)
    finally:
        await producer.stop()
    return int(sent.offset)


def end_offset(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        partition = TopicPartition(topic, 0)
        return int(consumer.end_offsets([partition])[partition])
    finally:
        consumer.close()


def test_the_rules_follower_reads_to_the_end_of_a_topic_that_ends_with_a_commit_marker(
    own_broker: Settings, tmp_path: Path
) -> None:
    bootstrap = own_broker.kafka_bootstrap
    expected, record = published_record(fax_rules(tmp_path), datetime.now(UTC))
    seen: list[RuleSet] = []
    follower = RulesFollower(bootstrap, seen.append)

    offset = asyncio.run(send_in_a_transaction(bootstrap, RULES_CONFIG, RULES_KEY, to_json(record)))
    wait_until(  # the broker writes the marker after the commit returned
        lambda: end_offset(bootstrap, RULES_CONFIG) == offset + 2, 30, "the commit marker"
    )

    asyncio.run(follow_until_caught_up(follower))

    assert [ruleset.fingerprint for ruleset in seen] == [expected.fingerprint]


def test_the_balances_follower_reads_to_the_end_of_a_partition_that_ends_with_a_commit_marker(
    own_broker: Settings,
) -> None:
    bootstrap = own_broker.kafka_bootstrap
    balance = EntitlementBalanceData(
        customer_id="acme", initial_hours=10, topped_up_hours=0, spent_minutes=630,
        hours_left=-0.5, last_ticket_id="T-AAAAAAAAAAAAA", recent_event_ids=(),
    )  # fmt: skip
    record = balance_record(balance, "test", datetime.now(UTC), "test")
    follower = BalancesFollower(bootstrap)

    offset = asyncio.run(
        send_in_a_transaction(bootstrap, ENTITLEMENT_BALANCES, b"acme", to_json(record))
    )
    wait_until(
        lambda: end_offset(bootstrap, ENTITLEMENT_BALANCES) == offset + 2, 30, "the commit marker"
    )
    asyncio.run(follow_until_caught_up(follower))

    assert follower.hours_left == {"acme": -0.5}
