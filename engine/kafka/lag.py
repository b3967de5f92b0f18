"""Consumer lag of the engine's consumer groups, as the engine itself sees it: each group's
committed offsets against the partitions' end offsets (``ticketing_consumer_lag``).

``group_lag`` is pure; ``read_lag`` asks the cluster (blocking: run it in a thread).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from engine.kafka.security import kafka_python_options, security_for

Lag = dict[tuple[str, str], int]  # (group, topic) -> records not consumed


def group_lag(
    committed: Mapping[str, Mapping[TopicPartition, int]], ends: Mapping[TopicPartition, int]
) -> Lag:
    """Per group and topic, the sum over partitions of end offset less committed offset."""
    lag: Lag = defaultdict(int)
    for group, offsets in committed.items():
        for partition, offset in offsets.items():
            end = ends.get(partition)
            if end is not None and offset >= 0:
                lag[(group, partition.topic)] += max(0, end - offset)
    return dict(lag)


def _group_id(entry: Any) -> str:
    """kafka-python's list_groups gives tuples or dicts, by version."""
    if isinstance(entry, dict):
        return str(entry.get("group_id") or entry.get("group") or "")
    return str(entry[0])


def read_lag(bootstrap: str, group_prefix: str, timeout_seconds: float = 10.0) -> Lag:
    """The lag of every group whose id starts with ``group_prefix`` (the engine's app id)."""
    servers = bootstrap.split(",")
    timeout_ms = int(timeout_seconds * 1000)
    admin = KafkaAdminClient(
        bootstrap_servers=servers,
        client_id="ticketing-engine-lag",
        request_timeout_ms=timeout_ms,
        **kafka_python_options(security_for(bootstrap)),
    )
    try:
        groups = [g for g in map(_group_id, admin.list_groups()) if g.startswith(group_prefix)]
        committed: dict[str, dict[TopicPartition, int]] = {}
        for group in groups:
            offsets = admin.list_group_offsets(group).get(group, {})
            committed[group] = {tp: meta.offset for tp, meta in offsets.items()}
    finally:
        admin.close()
    partitions = {tp for offsets in committed.values() for tp in offsets}
    if not partitions:
        return {}
    consumer = KafkaConsumer(
        bootstrap_servers=servers,
        group_id=None,
        enable_auto_commit=False,  # nothing to commit; kafka-python warns at every start else
        request_timeout_ms=timeout_ms + 1000,
        **kafka_python_options(security_for(bootstrap)),
    )
    try:
        ends = consumer.end_offsets(list(partitions))
    finally:
        consumer.close()
    return group_lag(committed, ends)
