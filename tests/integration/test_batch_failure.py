"""A processor batch that Kafka refuses is read again, never skipped.

faust acknowledges a ``take_events`` batch as the agent leaves it, even by an exception,
and commits what is acknowledged as the worker stops: crashing the faust way, a batch
whose outputs Kafka refused was committed and its tickets never routed. Here Kafka really
refuses one output (the decisions topic takes no record of that size): the processor must
exit without committing the batch, and once the topic takes records again a restarted
processor routes the ticket."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from engine.contract import to_json
from engine.contract.topics import TICKET_DECISIONS, TICKET_EVENTS, TIER_TOPICS, named
from engine.ingest.mail.parse import parse_email
from engine.kafka.faust_app import EXIT_BATCH_FAILED
from tests.integration.harness import ProcessorProcess, engine_env, support_mail, wait_until

REFUSING = {"max.message.bytes": "64"}  # below any decision record
TAKING = {"max.message.bytes": "1048588"}  # Kafka's default


def set_topic_config(bootstrap: str, topic: str, config: dict[str, str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=config)])
    finally:
        admin.close()


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


@pytest.fixture
def refusing_decisions(topics: str, topic_prefix: str) -> Iterator[str]:
    decisions = named(TICKET_DECISIONS, topic_prefix)
    set_topic_config(topics, decisions, REFUSING)
    yield decisions
    set_topic_config(topics, decisions, TAKING)


def records_of(
    bootstrap: str, topics: list[str], ticket: str, timeout: float
) -> list[dict[str, Any]]:
    """The ticket's records on ``topics``, read until one appears or ``timeout``."""
    consumer = KafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    found: list[dict[str, Any]] = []
    try:

        def seen() -> bool:
            for batch in consumer.poll(timeout_ms=500).values():
                found.extend(
                    json.loads(record.value) for record in batch if record.key == ticket.encode()
                )
            return bool(found)

        wait_until(seen, timeout, f"a record of {ticket} on {', '.join(topics)}")
    finally:
        consumer.close()
    return found


def test_a_batch_kafka_refuses_is_not_committed_and_is_routed_after_a_restart(
    topics: str, topic_prefix: str, refusing_decisions: str, tmp_path: Path
) -> None:
    env = engine_env(tmp_path / "engine", topics, topic_prefix)
    group = topic_prefix + env["ENGINE_APP_ID"]
    events = named(TICKET_EVENTS, topic_prefix)
    tier_topics = [named(topic, topic_prefix) for topic in TIER_TOPICS.values()]
    event = parse_email(
        bytes(support_mail("Centralita caída", "no entra ninguna llamada",
                           f"<{uuid.uuid4()}@acme.example>")),
        mail_from="cliente@acme.example", rcpt_to=("soporte@support.example.com",),
        peer="127.0.0.1", received_at=datetime.now(UTC), source="test",
    )  # fmt: skip
    ticket = event.data.ticket_id

    first = ProcessorProcess(env, tmp_path / "first.log")
    try:
        first.wait_assigned()
        producer = KafkaProducer(bootstrap_servers=topics, acks="all")
        sent = producer.send(events, key=ticket.encode(), value=to_json(event)).get(timeout=30)
        producer.close()
        exit_code = wait_until(first.process.poll, 90, "the processor to exit", first.log)
    finally:
        first.stop()

    assert exit_code == EXIT_BATCH_FAILED, first.log()[-3000:]
    assert "exiting without committing" in first.log()
    committed = committed_offsets(topics, group, events).get(sent.partition, 0)
    assert committed <= sent.offset, "the failed batch was committed"

    set_topic_config(topics, refusing_decisions, TAKING)
    restarted = ProcessorProcess(env, tmp_path / "restarted.log")
    try:
        restarted.wait_assigned()
        records_of(topics, tier_topics, ticket, 90)  # routed
        wait_until(
            lambda: committed_offsets(topics, group, events).get(sent.partition, 0) > sent.offset,
            60, "the batch's commit after the restart", restarted.log,
        )  # fmt: skip
    finally:
        restarted.stop()
