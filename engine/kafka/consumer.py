"""Every consumer of the engine, from one place: offsets committed by the engine itself
(never automatically, so a commit follows the effects), and a new group reading its
topics from the start."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer
from kafka import KafkaConsumer


def new_consumer(
    bootstrap: str, *topics: str, group_id: str | None = None, **options: Any
) -> KafkaConsumer:
    """A kafka-python consumer of ``topics`` in ``group_id`` (none: partitions are
    assigned by the caller); ``options`` are kafka-python's (fetch sizes...)."""
    return KafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap.split(","),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **options,
    )


def new_aio_consumer(bootstrap: str) -> AIOKafkaConsumer:
    """An aiokafka consumer in no group (not started), for the followers."""
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)


def new_aio_group_consumer(bootstrap: str, group_id: str, **options: Any) -> AIOKafkaConsumer:
    """An aiokafka consumer in ``group_id`` (not started); ``options`` are aiokafka's
    (session and heartbeat timeouts...)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=group_id, **options
    )
