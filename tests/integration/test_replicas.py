"""``engine up --replicas 2``: two processes of every component that can share the work,
side by side in their groups; SMTP and API processes share their ports; a processor killed
with SIGKILL leaves its partitions to the other, and every mail is still routed."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

from engine.contract import Tier
from engine.contract.topics import TIER_TOPICS
from engine.kafka import broker
from engine.settings import Settings
from engine.supervisor import REPLICA_PORT_STEP
from tests.integration.harness import (
    EngineProcess,
    TopicReader,
    engine_env,
    free_port,
    send_mail,
    support_mail,
    wait_until,
)

REPLICATED = ("smtp", "mail-parser", "api", "processor", "sla", "entitlements")
PARTITIONS = 6


def test_two_of_each_share_the_work_and_survive_a_killed_processor(tmp_path: Path) -> None:
    ports = {"ENGINE_BROKER_PORT": str(free_port()), "ENGINE_CONTROLLER_PORT": str(free_port())}
    env = engine_env(tmp_path / "state", ENGINE_REPLICAS="2", **ports)
    settings = Settings(
        state_dir=tmp_path / "state",
        broker_port=int(ports["ENGINE_BROKER_PORT"]),
        controller_port=int(ports["ENGINE_CONTROLLER_PORT"]),
    )
    engine = EngineProcess(env, tmp_path / "up.log")
    processor_ports = [engine.processor_metrics_port + REPLICA_PORT_STEP * k for k in (0, 1)]
    parser_ports = [engine.mail_parser_metrics_port + REPLICA_PORT_STEP * k for k in (0, 1)]
    smtp_port = int(env["ENGINE_SMTP_METRICS_PORT"])

    def owned(name: str, at: list[int]) -> list[float]:
        return [engine.metric(name, port=port) for port in at]

    try:
        engine.start("--replicas", "2")
        children = engine.children()
        assert {name: len(children.get(name, [])) for name in REPLICATED} == dict.fromkeys(
            REPLICATED, 2
        ), children
        assert len(children["snmp"]) == 1
        wait_until(
            lambda: (
                all(owned("ticketing_processor_assigned_partitions", processor_ports))
                and sum(owned("ticketing_processor_assigned_partitions", processor_ports))
                == PARTITIONS
            ),
            90,
            "both processors to own partitions",
            engine.log,
        )
        wait_until(
            lambda: all(owned("ticketing_mail_parser_assigned_partitions", parser_ports)),
            90,
            "both mail parsers to own partitions",
            engine.log,
        )

        tickets = []
        for number in range(16):
            message = support_mail(
                f"Caída {number}", "La central está caída", f"<{uuid.uuid4()}@acme.example>"
            )
            code, reply = send_mail(engine.smtp_port, message)
            assert code == 250, reply
            tickets.append(reply.decode().rsplit(" ", 1)[-1])
        accepted = [
            engine.metric(
                "ticketing_events_ingested_total",
                {"source": "email", "outcome": "accepted", "reason": ""},
                port=smtp_port + REPLICA_PORT_STEP * k,
            )
            for k in (0, 1)
        ]
        assert sum(accepted) == 16 and min(accepted) > 0, accepted  # both SMTP processes took mail

        killed = children["processor"][1]
        os.kill(killed, signal.SIGKILL)
        message = support_mail("Después", "La central está caída", f"<{uuid.uuid4()}@x.example>")
        code, reply = send_mail(engine.smtp_port, message)
        assert code == 250, reply
        tickets.append(reply.decode().rsplit(" ", 1)[-1])

        reader = TopicReader(settings.kafka_bootstrap, TIER_TOPICS[Tier.L3])
        try:
            wait_until(
                lambda: {key for key, _ in reader.keyed(lambda k, v: k in tickets)} == set(tickets),
                120,
                "every ticket to be routed",
                engine.log,
            )
        finally:
            reader.close()
        wait_until(
            lambda: (
                killed not in engine.children().get("processor", [killed])
                and len(engine.children().get("processor", [])) == 2
            ),
            60,
            "engine up to restart the killed processor",
            engine.log,
        )
    finally:
        engine.stop()
        broker.stop(settings)
