"""An INFORM is answered only once Kafka holds its event: with the broker stopped the
sender gets no answer (and retries); once it is back, the retried INFORM is stored.
A broker of its own, so the session's broker is not stopped under other tests."""

from __future__ import annotations

import time
from pathlib import Path

from engine.contract.topics import TICKET_EVENTS
from engine.kafka import broker
from engine.settings import Settings
from tests.integration.harness import (
    EngineProcess,
    TopicReader,
    engine_env,
    port_open,
    wait_until,
)
from tests.integration.snmp_peers import LINK_DOWN, NetSnmp, link_varbinds, scrape

COMMUNITY = "outage-test"


def spooled(port: int) -> float:
    key = frozenset({("source", "snmp"), ("outcome", "spooled"), ("reason", "kafka_unavailable")})
    return scrape(port).get(("ticketing_events_ingested_total", key), 0.0)


def stored(reader: TopicReader, if_index: int) -> bool:
    key = f"127.0.0.1|IF-MIB::link|{if_index}"
    return bool(reader.matching(lambda _, v: v["data"].get("alarm_key") == key))


def test_no_inform_response_while_kafka_is_down_and_the_retry_is_stored(
    own_broker: Settings, tmp_path: Path
) -> None:
    bootstrap = own_broker.kafka_bootstrap
    env = engine_env(tmp_path / "engine", bootstrap, ENGINE_SNMP_COMMUNITIES=COMMUNITY)
    engine = EngineProcess(env, tmp_path / "engine.log")
    engine.start("--bootstrap-servers", bootstrap)
    metrics = int(env["ENGINE_SNMP_METRICS_PORT"])
    wait_until(lambda: port_open(metrics), 60, "the SNMP receiver", on_timeout=engine.log)
    net = NetSnmp(int(env["ENGINE_SNMP_PORT"]), tmp_path / "net-snmp")
    reader = TopicReader(bootstrap, TICKET_EVENTS)
    try:
        answered = net.inform_v2c(COMMUNITY, LINK_DOWN, *link_varbinds(1, up=False))
        assert answered.returncode == 0, answered.stderr
        wait_until(lambda: stored(reader, 1), 60, "the first INFORM's event")
        reader.close()

        broker.stop(own_broker)
        unanswered = net.inform_v2c(COMMUNITY, LINK_DOWN, *link_varbinds(2, up=False), retries=1)
        assert unanswered.returncode != 0
        assert "Timeout" in unanswered.stderr + unanswered.stdout
        wait_until(lambda: spooled(metrics) >= 1, 30, "the unanswered INFORM spooled")

        broker.start(own_broker)

        def retried_by_sender() -> bool:
            done = net.inform_v2c(COMMUNITY, LINK_DOWN, *link_varbinds(2, up=False), retries=0)
            if done.returncode != 0:
                time.sleep(1)  # still reconnecting: a real sender retries too
            return done.returncode == 0

        wait_until(retried_by_sender, 120, "the receiver to answer INFORMs again")
        reader = TopicReader(bootstrap, TICKET_EVENTS)
        wait_until(lambda: stored(reader, 2), 60, "the retried INFORM's event")
    finally:
        reader.close()
        engine.stop()
