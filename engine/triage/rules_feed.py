"""Publishing a rule set, and following the published one.

``engine rules publish FILE`` validates the file and writes it to the compacted
``config.rules.v1`` topic (one key); a file that fails validation is never published.
Every processor follows that topic: it reads it to the end before triaging its first
event, then switches to each newly published set between two batches, so a batch is
decided by one rule set and every decision carries the fingerprint of the set that made it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from aiokafka import ConsumerRecord

from engine.contract import RulesPublished, RulesPublishedData, parse_record, to_json
from engine.contract.identity import event_id
from engine.contract.topics import RULES_CONFIG, RULES_KEY
from engine.errors import RulesError
from engine.kafka.follower import Follower
from engine.kafka.producer import publish as publish_records
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
    publish_records(bootstrap, [(RULES_CONFIG, RULES_KEY, to_json(record))])
    return ruleset


def ruleset_of(value: bytes) -> RuleSet:
    record = parse_record(value)
    if not isinstance(record, RulesPublished):
        raise RulesError(f"{RULES_CONFIG} holds a {record.kind}, not rules.published")
    return parse_ruleset(record.data.text, f"{RULES_CONFIG}:{record.data.origin}")


class RulesFollower:
    """Reads ``config.rules.v1`` from the start (switching only to the set published last),
    then follows it."""

    def __init__(self, bootstrap: str, on_ruleset: Callable[[RuleSet], None]) -> None:
        self._on_ruleset = on_ruleset
        self._follower = Follower("rules", bootstrap, [RULES_CONFIG], self._apply, latest_only=True)
        self.caught_up = self._follower.caught_up

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:
            return
        try:
            ruleset = ruleset_of(record.value)
        except Exception as error:
            log.error("ignoring a published rule set that does not validate: %s", error)
            return
        self._on_ruleset(ruleset)

    async def run(self) -> None:
        """Follow the topic for good; a failure is logged and the reading starts over."""
        await self._follower.run()
