"""No module outside ``engine/kafka/`` constructs a Kafka client: every producer comes from
the one factory (acks=all, idempotent, the same timeouts), every consumer from its own."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[3] / "engine"
KAFKA_LAYER = ENGINE / "kafka"
CLIENTS = {
    "KafkaProducer",
    "KafkaConsumer",
    "KafkaAdminClient",
    "AIOKafkaProducer",
    "AIOKafkaConsumer",
}


def constructed_clients(source: str) -> list[tuple[int, str]]:
    """(line, name) of every call of a Kafka client class, however it was imported or
    aliased (``from kafka import KafkaProducer as P``, ``kafka.KafkaProducer(...)``)."""
    tree = ast.parse(source)
    aliases = {
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name in CLIENTS
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = (
            func.id
            if isinstance(func, ast.Name)
            else func.attr
            if isinstance(func, ast.Attribute)
            else None
        )
        if name is None:
            continue
        client = aliases.get(name, name)
        if client in CLIENTS:
            found.append((node.lineno, client))
    return found


def test_only_the_kafka_layer_constructs_kafka_clients() -> None:
    offenders = [
        f"{path.relative_to(ENGINE.parent)}:{line} constructs {client}"
        for path in sorted(ENGINE.rglob("*.py"))
        if KAFKA_LAYER not in path.parents
        for line, client in constructed_clients(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "use engine.kafka.producer / engine.kafka.consumer:\n" + "\n".join(
        offenders
    )


def test_the_scan_sees_a_client_however_it_is_imported() -> None:
    source = (
        "from kafka import KafkaProducer as Make\n"
        "import aiokafka\n"
        "p = Make(bootstrap_servers='x')\n"
        "c = aiokafka.AIOKafkaConsumer()\n"
        "ok = make_something()\n"
    )
    assert constructed_clients(source) == [(3, "KafkaProducer"), (4, "AIOKafkaConsumer")]


def test_the_kafka_layer_itself_is_scanned_elsewhere_not_here() -> None:
    assert (KAFKA_LAYER / "producer.py").exists()
    assert constructed_clients((KAFKA_LAYER / "producer.py").read_text(encoding="utf-8"))
