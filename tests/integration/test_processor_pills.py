"""No single record stops the triage processor: hostile records on ``tickets.events.v1``
(not JSON, not UTF-8, nested past any parser's depth, a tombstone, a date at the end of
year 9999, a 900 KB body) are dead-lettered with their reason, and an ordinary event
behind them on the same partition is still routed."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from engine.contract import to_json
from engine.contract.topics import DEAD_LETTERS, TICKET_EVENTS, TIER_TOPICS, named
from engine.ingest.mail.parse import parse_email
from tests.integration.harness import (
    ProcessorProcess,
    TopicReader,
    engine_env,
    support_mail,
    wait_until,
)


def mail_event(subject: str, body: str) -> bytes:
    message = support_mail(subject, body, f"<{uuid.uuid4()}@acme.example>")
    event = parse_email(
        bytes(message), mail_from="cliente@acme.example",
        rcpt_to=("soporte@support.example.com",), peer="127.0.0.1",
        received_at=datetime.now(UTC), source="test",
    )  # fmt: skip
    return to_json(event)


def at_the_end_of_time(event: bytes) -> bytes:
    record = json.loads(event)
    record["occurred_at"] = "9999-12-31T23:59:59Z"
    return json.dumps(record).encode()


def test_the_processor_dead_letters_hostile_records_and_routes_the_next(
    topics: str, topic_prefix: str, tmp_path: Path
) -> None:
    events_topic = named(TICKET_EVENTS, topic_prefix)
    hostile: list[bytes | None] = [
        b"not json {",
        b"\xff\xfe\x00 not utf-8",
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        None,
        at_the_end_of_time(mail_event("Centralita caida", "no entra ninguna llamada")),
        mail_event("Consulta", "hola " * 180_000),
    ]
    ordinary = json.loads(mail_event("Troncal SIP caida", "la troncal no registra"))
    ticket = ordinary["data"]["ticket_id"]
    producer = KafkaProducer(bootstrap_servers=topics, max_request_size=4 * 1024 * 1024)
    for value in hostile:  # one partition: the ordinary event waits behind them
        producer.send(events_topic, value, key=b"pills", partition=0)
    producer.send(events_topic, json.dumps(ordinary).encode(), key=ticket.encode(), partition=0)
    producer.flush()
    producer.close()

    env = engine_env(tmp_path / "state", topics, topic_prefix)
    processor = ProcessorProcess(env, tmp_path / "processor.log")
    letters = TopicReader(topics, named(DEAD_LETTERS, topic_prefix))
    routed = [TopicReader(topics, named(topic, topic_prefix)) for topic in TIER_TOPICS.values()]
    try:

        def ordinary_routed() -> bool:
            return any(reader.keyed(lambda key, _: key == ticket) for reader in routed)

        wait_until(ordinary_routed, 120, "the ordinary event routed", on_timeout=processor.log)
        dead = wait_until(
            lambda: (found := letters.matching(of_events)) and len(found) >= 4 and found,
            60, "four dead letters of the events topic", on_timeout=processor.log,
        )  # fmt: skip
        assert processor.process.poll() is None, processor.log()[-3000:]
    finally:
        processor.stop()
        letters.close()
        for reader in routed:
            reader.close()
    assert all(letter["data"]["reason"] for letter in dead)


def of_events(_key: str | None, letter: dict[str, Any]) -> bool:
    return bool(letter["data"]["origin"].endswith("tickets.events.v1"))
