"""Rule sets on the running engine: published, followed without restart, diffed on history."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.contract import Tier
from engine.contract.topics import RULES_CONFIG, TIER_TOPICS
from engine.rules.ruleset import DEFAULT_RULES, load_ruleset
from tests.integration.harness import (
    PROJECT_ROOT,
    EngineProcess,
    TopicReader,
    send_mail,
    support_mail,
    wait_until,
)

FAX_RULE = """
  - id: fax-outage
    description: Test rule published while the engine runs
    match: {phrases: [fax machine]}
    set: {priority: P1, category: pbx_down}
"""


def engine_cli(kafka: str, topic_prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args, "--bootstrap-servers", kafka],
        env={**os.environ, "ENGINE_TOPIC_PREFIX": topic_prefix},
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def fax_rules(tmp_path: Path) -> Path:
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    text = text.replace('version: "2026.11.3"', 'version: "2026.11.3-fax"')
    text = text.replace("\nrules:\n", "\nrules:\n" + FAX_RULE, 1)
    path = tmp_path / "fax.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_published_rule_set_is_followed_without_restart_and_diffed_on_history(
    engine: EngineProcess,
    kafka: str,
    topic_prefix: str,
    fax_rules: Path,
    read_topic: Callable[[str], TopicReader],
) -> None:
    switches = engine.metric("ticketing_ruleset_switches_total")
    published = engine_cli(kafka, topic_prefix, "rules", "publish", str(fax_rules))
    assert published.returncode == 0, published.stderr
    fingerprint = load_ruleset(fax_rules).fingerprint
    assert fingerprint in published.stdout
    wait_until(
        lambda: engine.metric("ticketing_ruleset_switches_total") > switches,
        60,
        "the processor to switch to the published rule set",
    )

    code, reply = send_mail(
        engine.smtp_port,
        support_mail("Fax", "Our fax machine is broken", f"<{uuid.uuid4()}@acme.example>"),
    )
    assert code == 250, reply
    ticket = reply.decode().rsplit(" ", 1)[-1]
    routed = read_topic(TIER_TOPICS[Tier.L3]).wait_for(lambda key, value: key == ticket)

    classification = routed["data"]["classification"]
    assert classification["ruleset_version"] == fingerprint
    assert "fax-outage" in [m["rule_id"] for m in classification["matches"]]

    diff = engine_cli(kafka, topic_prefix, "rules", "diff", "--old", str(DEFAULT_RULES),
        "--new", str(fax_rules), "--last", "100",
    )  # fmt: skip
    assert diff.returncode == 0, diff.stderr
    assert ticket in diff.stdout
    # what the shipped rules decided is theirs (and the assistant's) to say; the new rule's P1
    # must show as the change
    assert re.search(r'"priority": \{"old": "P[234]", "new": "P1"\}', diff.stdout), diff.stdout
    assert "decisions would change" in diff.stdout


def test_a_rule_set_that_fails_validation_is_never_published(
    kafka: str, topic_prefix: str, tmp_path: Path, read_topic: Callable[[str], TopicReader]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'version: "x"\ndefaults: {priority: P3, category: other}\n'
        "rules: [{id: a, match: {phrases: [x]}, set: {priority: P0}}]\n"
        "routes: {id: root, tier: L1}\n",
        encoding="utf-8",
    )
    before = len(read_topic(RULES_CONFIG).matching(lambda key, value: True))

    result = engine_cli(kafka, topic_prefix, "rules", "publish", str(bad))

    assert result.returncode == 1
    assert "rules[0].set.priority" in result.stderr
    after = len(read_topic(RULES_CONFIG).matching(lambda key, value: True))
    assert after == before
