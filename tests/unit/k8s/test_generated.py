"""What deploy/k8s/generate.py makes: the committed files are exactly its output, and its
output says what the engine declares (topics, their settings, the monitoring rules)."""

from __future__ import annotations

import hashlib
from types import ModuleType

import pytest
import yaml

from engine.contract.topics import declared_topics
from tests.unit.k8s.manifests import K8S, ROOT, Resource, config, of_kind


def test_the_committed_files_are_what_the_generator_makes(generator: ModuleType) -> None:
    drifted = [
        str(path)
        for path, text in generator.rendered().items()
        if not (K8S / path).exists() or (K8S / path).read_text(encoding="utf-8") != text
    ]
    assert drifted == [], f"run python deploy/k8s/generate.py: {drifted} drifted"


@pytest.mark.parametrize("overlay", ["development", "production"])
def test_every_declared_topic_is_a_kafka_topic_as_engine_topics_create_makes_it(
    overlay: str, rendered: dict[str, list[Resource]], generator: ModuleType
) -> None:
    resources = rendered[overlay]
    settings = config(resources)
    partitions = int(settings["ENGINE_PARTITIONS"])
    replication = int(settings["ENGINE_REPLICATION_FACTOR"])
    topics = {
        topic["spec"]["topicName"]: topic["spec"]
        for topic in of_kind(resources, "KafkaTopic").values()
    }
    declared = declared_topics(partitions, replication, prefix="")
    assert sorted(topics) == sorted(spec.name for spec in declared)
    for spec in declared:
        assert topics[spec.name] == {
            "topicName": spec.name,
            "partitions": spec.partitions,
            "replicas": spec.replication_factor,
            "config": spec.config(),
        }
    cluster = generator.OVERLAYS[overlay]
    assert (partitions, replication) == (cluster.partitions, cluster.replication)


@pytest.mark.parametrize("overlay", ["development", "production"])
def test_the_engine_reaches_the_overlays_kafka_cluster(
    overlay: str, rendered: dict[str, list[Resource]]
) -> None:
    resources = rendered[overlay]
    (kafka,) = of_kind(resources, "Kafka").values()
    listener = kafka["spec"]["kafka"]["listeners"][0]
    bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap:{listener['port']}"
    assert config(resources)["ENGINE_BOOTSTRAP_SERVERS"] == bootstrap
    assert listener["tls"] is False  # the engine has no Kafka TLS setting yet
    assert "topicOperator" in kafka["spec"]["entityOperator"]
    pools = of_kind(resources, "KafkaNodePool").values()
    for role in ("controller", "broker"):
        assert any(role in p["spec"]["roles"] for p in pools), f"no {role} in {overlay}"
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    assert brokers >= int(config(resources)["ENGINE_REPLICATION_FACTOR"])
    # no client may create a topic by reading it before its KafkaTopic exists
    assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False


def test_production_keeps_three_copies_and_development_one(
    rendered: dict[str, list[Resource]],
) -> None:
    for overlay, copies, brokers in (("production", 3, 3), ("development", 1, 1)):
        topics = of_kind(rendered[overlay], "KafkaTopic").values()
        assert {topic["spec"]["replicas"] for topic in topics} == {copies}
        pools = of_kind(rendered[overlay], "KafkaNodePool").values()
        assert sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"]) == (
            brokers
        )
    (kafka,) = of_kind(rendered["production"], "Kafka").values()
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2


def test_the_prometheus_rule_is_every_rule_prometheus_loads(
    rendered: dict[str, list[Resource]],
) -> None:
    monitoring = ROOT / "deploy" / "monitoring"
    shipped = yaml.safe_load((monitoring / "prometheus.yml").read_text(encoding="utf-8"))
    groups = [
        group
        for rule_file in shipped["rule_files"]
        for group in yaml.safe_load((monitoring / rule_file).read_text(encoding="utf-8"))["groups"]
    ]
    assert groups, "no rule group in deploy/monitoring/"
    for resources in rendered.values():
        (rule,) = of_kind(resources, "PrometheusRule").values()
        assert rule["spec"]["groups"] == groups


def test_kafka_topic_names_are_object_names(generator: ModuleType) -> None:
    assert generator.resource_name("tickets.route.bug_tracker.v1") == "tickets.route.bug-tracker.v1"
    with pytest.raises(ValueError, match="cannot be named"):
        generator.resource_name("tickets..v1")


def test_the_committed_crds_were_made_from_the_pinned_generators() -> None:
    """deploy/k8s/tools/crds.sh records the hash of the pins it made the CRDs from; a pin
    changed without running it again leaves the checks on the old CRDs."""
    tools = K8S / "tools"
    pins = [
        tools / "crds.sh",
        tools / "strimzi" / "pom.xml",
        tools / "prometheus-operator" / "go.mod",
        tools / "prometheus-operator" / "go.sum",
    ]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in pins)).hexdigest()
    recorded = (K8S / "crds" / "INPUTS").read_text().strip()
    assert recorded == digest, "run deploy/k8s/tools/crds.sh and commit deploy/k8s/crds/"
    kinds = {
        crd["spec"]["names"]["kind"]
        for path in sorted((K8S / "crds").glob("*.yaml"))
        for crd in yaml.safe_load_all(path.read_text(encoding="utf-8"))
    }
    assert kinds == {"Kafka", "KafkaNodePool", "KafkaTopic", "ServiceMonitor", "PrometheusRule"}
