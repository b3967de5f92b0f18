"""ENGINE_TOPIC_PREFIX: one broker holds several engines' topics side by side."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from engine.contract.topics import PREFIX, TICKET_EVENTS, checked_prefix, declared_topics, named

SHOW_NAMES = (
    "import json; from engine.contract import topics; from engine.settings import Settings; "
    "print(json.dumps([topics.TICKET_EVENTS, topics.TIER_TOPICS[topics.Tier.L3], "
    "topics.RULES_CONFIG, [s.name for s in topics.declared_topics()], Settings().app_id]))"
)


def names_in_a_process(prefix: str | None) -> list[object]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ENGINE_")}
    if prefix is not None:
        env["ENGINE_TOPIC_PREFIX"] = prefix
    shown = subprocess.run(
        [sys.executable, "-c", SHOW_NAMES], env=env, capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0, shown.stderr
    loaded: list[object] = json.loads(shown.stdout)
    return loaded


def test_without_a_prefix_the_names_are_the_contract_names() -> None:
    events, l3, rules, declared, app_id = names_in_a_process(None)
    assert (events, l3, rules, app_id) == (
        "tickets.events.v1", "tickets.routed.l3.v1", "config.rules.v1", "ticketing-engine",
    )  # fmt: skip
    assert isinstance(declared, list) and "deadletter.v1" in declared


def test_a_prefix_names_every_topic_and_the_consumer_groups() -> None:
    events, l3, rules, declared, app_id = names_in_a_process("staging.")
    assert (events, l3, rules, app_id) == (
        "staging.tickets.events.v1", "staging.tickets.routed.l3.v1", "staging.config.rules.v1",
        "staging.ticketing-engine",
    )  # fmt: skip
    assert isinstance(declared, list)
    assert all(str(name).startswith("staging.") for name in declared)


def test_a_prefix_kafka_would_refuse_is_named_at_start() -> None:
    with pytest.raises(ValueError, match="ENGINE_TOPIC_PREFIX='bad prefix/'"):
        checked_prefix("bad prefix/")
    env = {**os.environ, "ENGINE_TOPIC_PREFIX": "bad prefix/"}
    started = subprocess.run(
        [sys.executable, "-c", "import engine.contract.topics"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert started.returncode != 0 and "ENGINE_TOPIC_PREFIX" in started.stderr


def test_another_engine_s_names_are_derived_from_this_process_s() -> None:
    assert named(TICKET_EVENTS, "it.") == "it.tickets.events.v1"
    assert {spec.name for spec in declared_topics(prefix="it.")} == {
        "it." + spec.name.removeprefix(PREFIX) for spec in declared_topics()
    }
