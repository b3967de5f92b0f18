"""Traps sent while Kafka is down are not lost: ``engine snmp`` spools their events on
local disk and replays them once the broker is back, in order, under the event ids they
would have had; and a receiver restarted in between replays what the previous one spooled.
net-snmp's ``snmptrap`` is the sender; a broker of the test's own is stopped and started."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.contract.topics import SNMP_TRAPS, TICKET_EVENTS
from engine.kafka import broker
from engine.settings import Settings
from tests.integration.harness import TopicReader, engine_env, port_open, wait_until
from tests.integration.snmp_peers import LINK_DOWN, LINK_UP, NetSnmp, link_varbinds, scrape

COMMUNITY = "spool-test"
OUTAGE_LINKS = (11, 12, 13, 14, 15)


@dataclass
class SnmpProcess:
    """``engine snmp`` on its own, as ``engine up`` runs it."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def metrics_port(self) -> int:
        return int(self.env["ENGINE_SNMP_METRICS_PORT"])

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engine", "snmp"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: self._alive() and port_open(self.metrics_port), 60,
                   "engine snmp to serve /metrics", on_timeout=self.log)  # fmt: skip

    def _alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"engine snmp exited with {self.process.returncode}\n{self.log()}")
        return True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def metric(self, name: str, **labels: str) -> float:
        wanted = frozenset(labels.items())
        samples = scrape(self.metrics_port)
        return sum(value for (n, ls), value in samples.items() if n == name and wanted <= ls)


@pytest.fixture
def snmp(own_broker: Settings, tmp_path: Path) -> Iterator[SnmpProcess]:
    env = engine_env(
        tmp_path / "engine", own_broker.kafka_bootstrap, ENGINE_SNMP_COMMUNITIES=COMMUNITY
    )
    running = SnmpProcess(env, tmp_path / "snmp.log")
    running.start()
    yield running
    running.stop()


def alarm(if_index: int) -> str:
    return f"127.0.0.1|IF-MIB::link|{if_index}"


def send_during_outage(net: NetSnmp) -> None:
    """linkDown of five ports, then linkUp of the first: its ticket's order matters."""
    for if_index in OUTAGE_LINKS:
        net.trap_v2c(COMMUNITY, LINK_DOWN, *link_varbinds(if_index, up=False))
    net.trap_v2c(COMMUNITY, LINK_UP, *link_varbinds(OUTAGE_LINKS[0], up=True))


def outage_events(reader: TopicReader) -> list[dict[str, Any]]:
    keys = {alarm(if_index) for if_index in OUTAGE_LINKS}
    return reader.matching(lambda _, value: value["data"].get("alarm_key") in keys)


def assert_stored_as_if_kafka_had_been_up(reader: TopicReader, back_at: datetime) -> None:
    events = wait_until(
        lambda: (found := outage_events(reader)) and len({e["event_id"] for e in found}) == 6
        and found, 180, "every trap of the outage on tickets.events.v1",
    )  # fmt: skip
    by_id = {event["event_id"]: event for event in events}
    assert len(by_id) == 6  # one event a trap (a replayed duplicate would share its id)
    audit = TopicReader(reader.bootstrap, SNMP_TRAPS)
    try:
        kept = wait_until(
            lambda: len({e["event_id"] for e in outage_events(audit)} & set(by_id)) == 6, 60,
            "every trap of the outage kept on snmp.traps.v1",
        )  # fmt: skip
    finally:
        audit.close()
    assert kept
    assert {e["kind"] for e in by_id.values()} == {"trap.received"}
    # Stamped when the trap arrived, not when Kafka took it.
    assert all(datetime.fromisoformat(e["occurred_at"]) < back_at for e in by_id.values())
    assert sorted((e["data"]["alarm_key"], e["data"]["transition"]) for e in by_id.values()) == (
        sorted([(alarm(i), "raised") for i in OUTAGE_LINKS] + [(alarm(11), "cleared")])
    )
    first_port = [e["data"]["transition"] for e in events if e["data"]["alarm_key"] == alarm(11)]
    assert first_port[0] == "raised" and first_port[-1] == "cleared"


def test_traps_sent_while_kafka_is_down_reach_kafka_once_it_is_back(
    own_broker: Settings, snmp: SnmpProcess, tmp_path: Path
) -> None:
    net = NetSnmp(int(snmp.env["ENGINE_SNMP_PORT"]), tmp_path / "net-snmp")
    before = TopicReader(own_broker.kafka_bootstrap, TICKET_EVENTS)
    try:
        net.trap_v2c(COMMUNITY, LINK_DOWN, *link_varbinds(1, up=False))
        before.wait_for(lambda _, value: value["data"].get("alarm_key") == alarm(1), 60)
    finally:
        before.close()

    broker.stop(own_broker)
    send_during_outage(net)
    # Each trap twice: its record for snmp.traps.v1 and its ticket event.
    wait_until(lambda: snmp.metric("ticketing_snmp_spool_records") == 12, 120,
               "six traps spooled", on_timeout=snmp.log)  # fmt: skip
    assert snmp.metric("ticketing_events_ingested_total", outcome="accepted") == 1
    back_at = datetime.now(UTC)
    broker.start(own_broker)

    wait_until(lambda: snmp.metric("ticketing_snmp_spool_replayed_total") >= 12, 180,
               "the spool replayed", on_timeout=snmp.log)  # fmt: skip
    assert snmp.metric("ticketing_snmp_spool_records") == 0
    reader = TopicReader(own_broker.kafka_bootstrap, TICKET_EVENTS)
    try:
        assert_stored_as_if_kafka_had_been_up(reader, back_at)
    finally:
        reader.close()
    assert not list((tmp_path / "engine" / "snmp-spool").glob("*.seg"))


def test_a_restarted_receiver_replays_what_the_previous_one_spooled(
    own_broker: Settings, snmp: SnmpProcess, tmp_path: Path
) -> None:
    net = NetSnmp(int(snmp.env["ENGINE_SNMP_PORT"]), tmp_path / "net-snmp")
    broker.stop(own_broker)
    send_during_outage(net)
    # Each trap twice: its record for snmp.traps.v1 and its ticket event.
    wait_until(lambda: snmp.metric("ticketing_snmp_spool_records") == 12, 120,
               "six traps spooled", on_timeout=snmp.log)  # fmt: skip
    snmp.stop()
    assert list((tmp_path / "engine" / "snmp-spool").glob("*.seg"))

    back_at = datetime.now(UTC)
    broker.start(own_broker)
    snmp.start()
    reader = TopicReader(own_broker.kafka_bootstrap, TICKET_EVENTS)
    try:
        assert_stored_as_if_kafka_had_been_up(reader, back_at)
        wait_until(lambda: snmp.metric("ticketing_snmp_spool_records") == 0, 60,
                   "an empty spool", on_timeout=snmp.log)  # fmt: skip
        assert "12 spooled records to replay" in snmp.log()
    finally:
        reader.close()
