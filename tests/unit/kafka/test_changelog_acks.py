"""A table's changelog is read without acks, as faust reads its own: faust checks every
acked partition for a stream that stopped, and a changelog no stream reads after the
restore would be reported stalled every few seconds, for ever (a false alert)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from engine.clock import FrozenClock
from engine.contract.customers import CustomerDirectory
from engine.rules.ruleset import load_ruleset
from engine.settings import Settings
from engine.sla.calendars import DEFAULT_CALENDARS
from engine.sla.worker import SlaWorker
from engine.triage.processor import Processor

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, bootstrap_servers="127.0.0.1:1")


def test_the_processor_acks_its_events_and_not_its_tables_changelog(tmp_path: Path) -> None:
    processor = Processor(settings(tmp_path), load_ruleset(), FrozenClock(NOW))
    assert processor.events.acks is True
    assert processor.tickets.changelog_topic.acks is False


def test_the_sla_worker_acks_the_states_and_not_its_clocks_changelog(tmp_path: Path) -> None:
    worker = SlaWorker(
        settings(tmp_path), DEFAULT_CALENDARS, CustomerDirectory([]), FrozenClock(NOW)
    )
    assert worker.states.acks is True
    assert worker.clocks.changelog_topic.acks is False
