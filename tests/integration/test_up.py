"""The quick start's main command: ``engine up`` with its own local broker."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

from engine.contract import Tier
from engine.contract.topics import TIER_TOPICS
from engine.kafka import broker
from engine.settings import Settings
from tests.integration.harness import (
    EngineProcess,
    TopicReader,
    engine_env,
    free_port,
    send_mail,
    support_mail,
    wait_until,
)
from tests.integration.snmp_peers import encoded_link_trap


def test_engine_up_runs_everything_stops_cleanly_and_finds_its_data_again(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    ports = {"ENGINE_BROKER_PORT": str(free_port()), "ENGINE_CONTROLLER_PORT": str(free_port())}
    engine = EngineProcess(engine_env(state, ENGINE_LOG_LEVEL="INFO", **ports), tmp_path / "up.log")
    settings = Settings(
        state_dir=state,
        broker_port=int(ports["ENGINE_BROKER_PORT"]),
        controller_port=int(ports["ENGINE_CONTROLLER_PORT"]),
    )
    message = support_mail(
        "Outage", "Our PBX is down, no calls at all", f"<{uuid.uuid4()}@x.example>"
    )
    try:
        engine.start()
        code, reply = send_mail(engine.smtp_port, message)
        assert code == 250, reply
        ticket = reply.decode().rsplit(" ", 1)[-1]
        reader = TopicReader(settings.kafka_bootstrap, TIER_TOPICS[Tier.L3])
        reader.wait_for(lambda key, value: key == ticket)
        reader.close()
        assert_development_community_accepted(engine)

        assert engine.stop() == 0
        assert broker.running_pid(broker.BrokerPaths.of(settings)) is None
        assert "up: Kafka broker stopped" in engine.log()

        engine.start()
        code, reply = send_mail(engine.smtp_port, message)
        assert code == 250, reply
        wait_until(
            lambda: (
                engine.metric("ticketing_processor_events_total", {"outcome": "duplicate"}) >= 1
            ),
            150,  # includes a stall restart (engine/kafka/watchdog.py, stalled_partitions)
            "the restarted engine to recognise the mail from its stored state",
            on_timeout=engine.log,
        )
        reader = TopicReader(settings.kafka_bootstrap, TIER_TOPICS[Tier.L3])
        assert len(reader.matching(lambda key, value: key == ticket)) == 1
        reader.close()
    finally:
        engine.stop()
        broker.stop(settings)


def assert_development_community_accepted(engine: EngineProcess) -> None:
    """No community configured: engine up says it accepts ``public``, and does."""
    warning = "the SNMP receiver accepts v1/v2c traps with the community 'public'"
    assert warning in engine.log_path.read_text(errors="replace")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(encoded_link_trap("public", 7, 4242), ("127.0.0.1", engine.snmp_port))
    accepted = {"source": "snmp", "outcome": "accepted", "reason": "trap"}
    wait_until(
        lambda: (
            engine.metric(
                "ticketing_events_ingested_total", accepted, port=engine.snmp_metrics_port
            )
            >= 1
        ),
        60,
        "the SNMP receiver to accept a trap with the community public",
        on_timeout=engine.log,
    )
