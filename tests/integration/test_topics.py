"""Topic provisioning against the real broker: created as declared, idempotent."""

from __future__ import annotations

import subprocess
import sys

from engine.contract.topics import declared_topics
from engine.kafka.admin import TopicAction, list_topics, provision
from tests.integration.harness import PROJECT_ROOT


def engine_cli(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args, "--bootstrap-servers", bootstrap],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        check=False,
    )


def test_topics_create_is_idempotent_and_says_so(kafka: str) -> None:
    first = engine_cli(kafka, "topics", "create")
    second = engine_cli(kafka, "topics", "create")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "Nothing to change" in second.stdout
    assert all(
        outcome.action is TopicAction.UNCHANGED for outcome in provision(kafka, declared_topics())
    )


def test_topics_exist_with_their_declared_settings(kafka: str) -> None:
    provision(kafka, declared_topics())
    found = list_topics(kafka, declared_topics())

    for spec in declared_topics():
        described = found[spec.name]
        assert described.partitions == spec.partitions
        assert described.replication_factor == spec.replication_factor
        for key, value in spec.config().items():
            assert described.config[key] == value, (spec.name, key)
    assert found["tickets.state.v1"].config["cleanup.policy"] == "compact"


def test_topics_list_shows_every_topic(kafka: str) -> None:
    result = engine_cli(kafka, "topics", "list")

    assert result.returncode == 0, result.stderr
    for spec in declared_topics():
        assert spec.name in result.stdout


def test_a_topic_that_differs_is_reported_not_altered(kafka: str) -> None:
    import dataclasses

    spec = dataclasses.replace(
        declared_topics()[0], name="tests.differs.v1", retention_ms=1000 * 60 * 60
    )
    provision(kafka, [spec])
    changed = dataclasses.replace(spec, retention_ms=1000 * 60 * 60 * 2)

    (outcome,) = provision(kafka, [changed])

    assert outcome.action is TopicAction.DIFFERS
    assert "retention.ms is 3600000, declared 7200000" in outcome.detail
