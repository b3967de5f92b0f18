"""``engine up --nodes 3``: the engine on a local three-node KRaft cluster, its topics with
replication factor 3 and min.insync.replicas 2, and ``engine broker status`` saying which
node leads which partitions."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from engine.contract import Tier
from engine.contract.topics import TICKET_EVENTS, TIER_TOPICS, declared_topics
from engine.kafka import broker
from engine.kafka.admin import admin_client, describe
from engine.settings import NODE_PORT_STEP, Settings
from tests.integration.harness import (
    EngineProcess,
    TopicReader,
    engine_env,
    free_port,
    send_mail,
    support_mail,
)


def cluster_ports(nodes: int) -> tuple[int, int]:
    """A broker and a controller port with every node's ports (+10 each) free."""
    base = free_port(span=NODE_PORT_STEP * (nodes - 1) + 1)
    return base, base + 1


def test_engine_up_on_three_nodes_replicates_every_topic_and_routes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    broker_port, controller_port = cluster_ports(3)
    env = engine_env(
        state,
        ENGINE_BROKER_PORT=str(broker_port),
        ENGINE_CONTROLLER_PORT=str(controller_port),
    )
    settings = Settings(
        state_dir=state, broker_port=broker_port, controller_port=controller_port, broker_nodes=3
    )
    engine = EngineProcess(env, tmp_path / "up.log")
    try:
        engine.start("--nodes", "3")
        assert "up: Kafka cluster of 3 nodes started" in engine.log()

        with admin_client(settings.kafka_bootstrap) as client:
            found = describe(client, [spec.name for spec in declared_topics()])
        assert len(found) == len(declared_topics())
        assert {topic.replication_factor for topic in found.values()} == {3}
        assert {topic.config["min.insync.replicas"] for topic in found.values()} == {"2"}

        message_id = f"<{uuid.uuid4()}@acme.example>"
        code, reply = send_mail(
            engine.smtp_port, support_mail("Caída", "La central está caída", message_id)
        )
        assert code == 250, reply
        ticket = reply.decode().rsplit(" ", 1)[-1]
        reader = TopicReader(settings.kafka_bootstrap, TIER_TOPICS[Tier.L3])
        try:
            reader.wait_for(lambda key, value: key == ticket, timeout=90)
        finally:
            reader.close()

        status = subprocess.run(
            [sys.executable, "-m", "engine", "broker", "status", "--nodes", "3"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        lines = status.stdout.splitlines()
        assert lines[0].startswith("Kafka cluster of 3 nodes")
        led = [int(line.split("leads ")[1].split()[0]) for line in lines[1:4]]
        # the engine's topics, and the processor's own (faust's) beside them
        assert sum(led) >= sum(spec.partitions for spec in declared_topics()), status.stdout
        assert min(led) > 0, status.stdout
        assert "without a leader" not in status.stdout
        assert f"{TICKET_EVENTS} [" in status.stdout
    finally:
        engine.stop()
        broker.stop(settings)
    assert all(broker.running_pid(node.paths) is None for node in broker.cluster_nodes(settings))
