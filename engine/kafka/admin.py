"""Topic provisioning and cluster checks with kafka-python's admin client."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from engine.contract.topics import TopicSpec
from engine.errors import ProvisioningError
from engine.kafka.security import KafkaSecurity, kafka_python_options, security_for


class TopicAction(StrEnum):
    CREATED = "created"
    UNCHANGED = "unchanged"
    DIFFERS = "differs"


@dataclass(frozen=True)
class TopicOutcome:
    name: str
    action: TopicAction
    detail: str = ""


@dataclass(frozen=True)
class TopicDescription:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


@contextlib.contextmanager
def admin_client(
    bootstrap: str,
    timeout_seconds: float = 10.0,
    *,
    security: KafkaSecurity | None = None,
    bootstrap_timeout_seconds: float = 30.0,
) -> Iterator[KafkaAdminClient]:
    """An admin client with ``security`` (by default the process's), giving up after
    ``bootstrap_timeout_seconds`` when no broker answers."""
    try:
        client = KafkaAdminClient(
            bootstrap_servers=bootstrap.split(","),
            client_id="ticketing-engine-admin",
            request_timeout_ms=int(timeout_seconds * 1000),
            bootstrap_timeout_ms=int(bootstrap_timeout_seconds * 1000),
            **kafka_python_options(security or security_for(bootstrap)),
        )
    except KafkaError as error:
        raise ProvisioningError(f"Kafka at {bootstrap} does not answer: {error}") from error
    try:
        yield client
    finally:
        client.close()


def cluster_answers(
    bootstrap: str, timeout_seconds: float = 2.0, *, security: KafkaSecurity | None = None
) -> bool:
    """True when a broker at ``bootstrap`` answers a metadata request (to a client with
    ``security``, by default the process's)."""
    if not any(_port_open(address, timeout_seconds) for address in bootstrap.split(",")):
        return False
    quiet = logging.getLogger("kafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        client = KafkaAdminClient(
            bootstrap_servers=bootstrap.split(","),
            client_id="ticketing-engine-probe",
            request_timeout_ms=int(timeout_seconds * 1000),
            **kafka_python_options(security or security_for(bootstrap)),
        )
        try:
            client.describe_cluster()
            return True
        finally:
            client.close()
    except (KafkaError, OSError):
        return False
    finally:
        quiet.setLevel(level)


def _port_open(address: str, timeout_seconds: float) -> bool:
    """A cheap first check: kafka-python's client retries a closed port for many seconds."""
    host, _, port = address.strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_seconds):
            return True
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class PartitionLeaders:
    """Which broker leads each partition, by (topic, partition), of a cluster."""

    brokers: frozenset[int]
    leaders: dict[tuple[str, int], int]

    def led_by(self, broker_id: int) -> list[tuple[str, int]]:
        return sorted(where for where, leader in self.leaders.items() if leader == broker_id)

    @property
    def leaderless(self) -> list[tuple[str, int]]:
        return sorted(where for where, leader in self.leaders.items() if leader < 0)


def partition_leaders(
    bootstrap: str, timeout_seconds: float = 5.0, *, security: KafkaSecurity | None = None
) -> PartitionLeaders | None:
    """The cluster's brokers (not fenced) and the leader of every partition; None when it
    does not answer."""
    if not cluster_answers(bootstrap, min(2.0, timeout_seconds), security=security):
        return None
    try:
        with admin_client(bootstrap, timeout_seconds, security=security) as client:
            brokers = frozenset(
                int(found["broker_id"])
                for found in client.describe_cluster()["brokers"]
                if not found.get("is_fenced", False)
            )
            topics = client.describe_topics()
    except (KafkaError, OSError, ProvisioningError):
        return None
    leaders = {
        (topic["name"], int(partition["partition_index"])): int(partition["leader_id"])
        for topic in topics
        if not topic["name"].startswith("__")
        for partition in topic["partitions"]
    }
    return PartitionLeaders(brokers, leaders)


def describe(client: KafkaAdminClient, names: Sequence[str]) -> dict[str, TopicDescription]:
    existing = set(client.list_topics())
    wanted = [name for name in names if name in existing]
    if not wanted:
        return {}
    topics = client.describe_topics(wanted)
    configs = client.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted]
    )["topic"]
    return {
        topic["name"]: TopicDescription(
            name=topic["name"],
            partitions=len(topic["partitions"]),
            replication_factor=len(topic["partitions"][0]["replica_nodes"]),
            config={key: entry["value"] for key, entry in configs[topic["name"]].items()},
        )
        for topic in topics
    }


def differences(spec: TopicSpec, found: TopicDescription) -> list[str]:
    found_values = {
        "partitions": str(found.partitions),
        "replication factor": str(found.replication_factor),
        **found.config,
    }
    wanted_values = {
        "partitions": str(spec.partitions),
        "replication factor": str(spec.replication_factor),
        **spec.config(),
    }
    return [
        f"{key} is {found_values.get(key, 'the broker default')}, declared {value}"
        for key, value in wanted_values.items()
        if found_values.get(key) != value
    ]


def provision(bootstrap: str, specs: Sequence[TopicSpec]) -> list[TopicOutcome]:
    """Create missing topics; report existing ones that differ (never altered silently:
    changing partitions would move tickets to other partitions)."""
    with admin_client(bootstrap) as client:
        found = describe(client, [spec.name for spec in specs])
        missing = [spec for spec in specs if spec.name not in found]
        if missing:
            try:
                client.create_topics(
                    [
                        NewTopic(
                            spec.name,
                            spec.partitions,
                            spec.replication_factor,
                            topic_configs=spec.config(),
                        )
                        for spec in missing
                    ]
                )
            except TopicAlreadyExistsError:
                # Created meanwhile (another process), or created already but not yet in the
                # metadata this client read: what is there is described, as for any topic.
                found = _described_once_visible(client, [spec.name for spec in specs])
            except KafkaError as error:
                raise ProvisioningError(f"Creating topics failed: {error}") from error
    outcomes = []
    for spec in specs:
        if spec.name not in found:
            outcomes.append(TopicOutcome(spec.name, TopicAction.CREATED))
            continue
        diffs = differences(spec, found[spec.name])
        action = TopicAction.DIFFERS if diffs else TopicAction.UNCHANGED
        outcomes.append(TopicOutcome(spec.name, action, "; ".join(diffs)))
    return outcomes


def _described_once_visible(
    client: KafkaAdminClient, names: Sequence[str], timeout_seconds: float = 10.0
) -> dict[str, TopicDescription]:
    deadline = time.monotonic() + timeout_seconds
    found = describe(client, names)
    while len(found) < len(names) and time.monotonic() < deadline:
        time.sleep(0.2)
        found = describe(client, names)
    return found


def list_topics(bootstrap: str, specs: Sequence[TopicSpec]) -> dict[str, TopicDescription]:
    with admin_client(bootstrap) as client:
        return describe(client, [spec.name for spec in specs])
