"""Publishing a rule set, and following the published one.

``engine rules publish FILE`` validates the file and writes it to the compacted
``config.rules.v1`` topic (one key); a file that fails validation is never published.
Every processor follows that topic: it reads it to the end before triaging its first
event, then switches to each newly published set between two batches, so a batch is
decided by one rule set and every decision carries the fingerprint of the set that made it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from kafka import KafkaProducer

from engine.contract import RulesPublished, RulesPublishedData, parse_record, to_json
from engine.contract.identity import event_id
from engine.contract.topics import RULES_CONFIG, RULES_KEY
from engine.errors import RulesError
from engine.kafka.catch_up import follow, read_to_end
from engine.rules.ruleset import RuleSet, parse_ruleset

log = logging.getLogger(__name__)


def published_record(path: Path, now: datetime) -> tuple[RuleSet, RulesPublished]:
    text = path.read_text(encoding="utf-8")
    ruleset = parse_ruleset(text, str(path))
    record = RulesPublished(
        event_id=event_id("rules", ruleset.fingerprint),
        occurred_at=now,
        source="engine.rules.publish",
        data=RulesPublishedData(
            version=ruleset.version,
            fingerprint=ruleset.fingerprint,
            origin=path.name,
            text=text,
        ),
    )
    return ruleset, record


def publish(bootstrap: str, path: Path, now: datetime) -> RuleSet:
    ruleset, record = published_record(path, now)
    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all")
    try:
        producer.send(RULES_CONFIG, key=RULES_KEY, value=to_json(record)).get(timeout=30)
    finally:
        producer.close()
    return ruleset


def ruleset_of(value: bytes) -> RuleSet:
    record = parse_record(value)
    if not isinstance(record, RulesPublished):
        raise RulesError(f"{RULES_CONFIG} holds a {record.kind}, not rules.published")
    return parse_ruleset(record.data.text, f"{RULES_CONFIG}:{record.data.origin}")


class RulesFollower:
    """Reads ``config.rules.v1`` from the start, then follows it."""

    def __init__(self, bootstrap: str, on_ruleset: Callable[[RuleSet], None]) -> None:
        self._bootstrap = bootstrap
        self._on_ruleset = on_ruleset
        self.caught_up = asyncio.Event()

    def _apply(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            ruleset = ruleset_of(value)
        except Exception as error:
            log.error("ignoring a published rule set that does not validate: %s", error)
            return
        self._on_ruleset(ruleset)

    async def run(self) -> None:
        """Follow the topic for good; a failure is logged and the reading starts over."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("rules: reading %s failed; retrying in 2s", RULES_CONFIG)
                await asyncio.sleep(2)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(RULES_CONFIG, 0)]
            consumer.assign(partitions)
            latest: bytes | None = None

            def keep(record: ConsumerRecord[bytes, bytes]) -> None:
                nonlocal latest
                latest = record.value

            await read_to_end(consumer, partitions, keep)
            self._apply(latest)
            self.caught_up.set()
            await follow(consumer, lambda record: self._apply(record.value))
        finally:
            await consumer.stop()
