"""The rules' command line: ``engine classify`` and ``engine rules check|test|diff|publish``."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from kafka import TopicPartition
from pydantic import ValidationError

from engine.contract import MessageEvent, parse_incoming
from engine.contract.customers import CustomerDirectory
from engine.contract.topics import TICKET_EVENTS
from engine.errors import EngineError, RulesError, describe_validation
from engine.kafka.consumer import new_consumer
from engine.rules.cases import load_cases, message_from, render_report, run_cases
from engine.rules.decide import decide
from engine.rules.measure import as_json, measure, outcome_of, render
from engine.rules.ruleset import RuleSet, load_ruleset, walk
from engine.triage.triage import message_of

DIFF_FIELDS = ("priority", "category", "tier", "routes", "tags")


def check(paths: Sequence[Path], out: TextIO = sys.stdout) -> int:
    failed = 0
    for path in paths:
        try:
            ruleset = load_ruleset(path)
        except RulesError as error:
            print(error, file=out)
            failed += 1
            continue
        routes = sum(1 for _ in walk(ruleset.routes))
        print(f"ok {path}: version {ruleset.fingerprint}, {len(ruleset.rules)} rules, "
              f"{routes} routes", file=out)  # fmt: skip
    return 1 if failed else 0


def classify_lines(
    lines: TextIO, ruleset: RuleSet, directory: CustomerDirectory, out: TextIO = sys.stdout
) -> int:
    """One JSON decision a line; a bad line gets a JSON error naming the field."""
    errors = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            message = message_from(json.loads(line), directory)
        except (json.JSONDecodeError, ValidationError, TypeError) as error:
            errors += 1
            print(json.dumps({"line": number, "error": _error_text(error)}), file=out)
            continue
        decision = decide(message, ruleset)
        print(
            json.dumps({**decision.summary(), "explanation": decision.explanation()},
                       ensure_ascii=False),
            file=out, flush=True,
        )  # fmt: skip
    return 1 if errors else 0


def _error_text(error: Exception) -> str:
    return describe_validation(error) if isinstance(error, ValidationError) else str(error)


def test(
    cases_path: Path, ruleset: RuleSet, directory: CustomerDirectory, out: TextIO = sys.stdout
) -> int:
    report = run_cases(load_cases(cases_path), ruleset, directory)
    print(render_report(report), file=out)
    return 1 if report.failures else 0


def test_report(
    cases_path: Path,
    ruleset: RuleSet,
    directory: CustomerDirectory,
    out: TextIO = sys.stdout,
    as_data: bool = False,
) -> int:
    """The figures of a labelled file, not its failures: a measurement, so it exits 0
    unless a case cannot be read."""
    measured = measure(
        outcome_of(result)
        for result in run_cases(load_cases(cases_path), ruleset, directory).results
    )
    if as_data:
        data = {
            "file": str(cases_path),
            "ruleset_version": ruleset.fingerprint,
            **as_json(measured),
        }
        print(json.dumps(data, ensure_ascii=False), file=out)
    else:
        print(render(measured, title=f"{cases_path} ({ruleset.fingerprint})"), file=out)
    return 1 if measured.unreadable else 0


def recorded_events(
    bootstrap: str,
    last: int | None,
    since: datetime | None,
    until: datetime | None,
) -> Iterator[MessageEvent]:
    """Messages recorded on the ticket events topic (agents' activity is not classified):
    the last N of each partition, or a time range."""
    consumer = new_consumer(bootstrap)
    try:
        partitions = [
            TopicPartition(TICKET_EVENTS, p)
            for p in sorted(consumer.partitions_for_topic(TICKET_EVENTS) or ())
        ]
        if not partitions:
            raise EngineError(f"no topic {TICKET_EVENTS} on {bootstrap}")
        consumer.assign(partitions)
        end = consumer.end_offsets(partitions)
        begin = consumer.beginning_offsets(partitions)
        for tp in partitions:
            start = begin[tp]
            if last is not None:
                start = max(begin[tp], end[tp] - last)
            if since is not None:
                found = consumer.offsets_for_times({tp: int(since.timestamp() * 1000)})[tp]
                start = found.offset if found else end[tp]
            consumer.seek(tp, start)
        limit_ms = int(until.timestamp() * 1000) if until else None
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    if record.offset >= end[TopicPartition(record.topic, record.partition)]:
                        continue
                    if limit_ms is not None and record.timestamp > limit_ms:
                        continue
                    try:
                        event = parse_incoming(record.value)
                    except ValidationError:
                        continue  # dead-lettered by the processor; not a decision to compare
                    if isinstance(event, MessageEvent):
                        yield event
    finally:
        consumer.close()


def diff(
    old: RuleSet,
    new: RuleSet,
    events: Iterator[MessageEvent],
    directory: CustomerDirectory,
    out: TextIO = sys.stdout,
) -> int:
    """Print every decision that would change, then the counts by field."""
    counts: Counter[str] = Counter()
    seen = changed = 0
    for event in events:
        seen += 1
        message = message_of(event, directory)
        before, after = decide(message, old).summary(), decide(message, new).summary()
        fields = {
            name: (before[name], after[name]) for name in DIFF_FIELDS if before[name] != after[name]
        }
        if not fields:
            continue
        changed += 1
        counts.update(fields)
        change: dict[str, Any] = {
            "ticket_id": event.data.ticket_id,
            "event_id": event.event_id,
            "subject": message.subject,
            "changes": {name: {"old": a, "new": b} for name, (a, b) in fields.items()},
            "new_explanation": decide(message, new).explanation()["reasons"],
        }
        print(json.dumps(change, ensure_ascii=False), file=out)
    print(f"{seen} recorded events replayed through {old.fingerprint} and {new.fingerprint}; "
          f"{changed} decisions would change", file=out)  # fmt: skip
    for name in DIFF_FIELDS:
        print(f"  {name:9} {counts[name]}", file=out)
    return 0
