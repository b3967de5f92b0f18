"""The local broker as a KRaft cluster: each node's ports, folders and configuration, and
the replication the topics get on it. Pure: no broker is started here."""

from __future__ import annotations

from pathlib import Path

from engine.kafka.broker import cluster_nodes, server_properties
from engine.settings import Settings


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(state_dir=tmp_path, broker_port=19092, controller_port=19093, **values)  # type: ignore[arg-type]


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_one_node_keeps_the_single_broker_folder_and_ports(tmp_path: Path) -> None:
    (node,) = cluster_nodes(settings(tmp_path))
    assert (node.node_id, node.port, node.controller_port) == (1, 19092, 19093)
    assert node.paths.root == tmp_path / "kafka"
    config = properties(server_properties(settings(tmp_path), node, (node,)))
    assert config["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert config["offsets.topic.replication.factor"] == "1"


def test_three_nodes_have_their_own_ports_and_folders_and_one_quorum(tmp_path: Path) -> None:
    three = settings(tmp_path, broker_nodes=3)
    nodes = cluster_nodes(three)
    assert [(n.node_id, n.port, n.controller_port) for n in nodes] == [
        (1, 19092, 19093),
        (2, 19102, 19103),
        (3, 19112, 19113),
    ]
    assert len({n.paths.root for n in nodes}) == 3
    assert all(n.paths.root.parent == tmp_path / "kafka-cluster" for n in nodes)
    config = properties(server_properties(three, nodes[1], nodes))
    assert config["node.id"] == "2"
    assert config["controller.quorum.voters"] == (
        "1@127.0.0.1:19093,2@127.0.0.1:19103,3@127.0.0.1:19113"
    )
    assert config["listeners"] == "PLAINTEXT://127.0.0.1:19102,CONTROLLER://127.0.0.1:19103"
    assert config["log.dirs"] == str(nodes[1].paths.data)
    assert config["offsets.topic.replication.factor"] == "3"
    assert config["transaction.state.log.min.isr"] == "2"
    assert three.kafka_bootstrap == "127.0.0.1:19092,127.0.0.1:19102,127.0.0.1:19112"


def test_three_or_more_nodes_give_the_topics_three_replicas_unless_set(tmp_path: Path) -> None:
    assert settings(tmp_path).topic_replication_factor == 1
    assert settings(tmp_path, broker_nodes=2).topic_replication_factor == 1
    assert settings(tmp_path, broker_nodes=3).topic_replication_factor == 3
    assert settings(tmp_path, broker_nodes=5).topic_replication_factor == 3
    assert settings(tmp_path, broker_nodes=3, replication_factor=2).topic_replication_factor == 2
    remote = settings(tmp_path, broker_nodes=3, bootstrap_servers="kafka:9092")
    assert remote.topic_replication_factor == 1
    assert remote.kafka_bootstrap == "kafka:9092"
