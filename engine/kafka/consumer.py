"""Every consumer of the engine, from one place: offsets committed by the engine itself
(never automatically, so a commit follows the effects), and a new group reading its
topics from the start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer
from kafka import KafkaConsumer

from engine.kafka.membership import member_client_id
from engine.kafka.security import (
    aiokafka_options,
    kafka_python_options,
    process_security,
    security_for,
)

# A member gone without leaving its group (SIGKILL, a crash, the stall exit) holds its
# partitions this long, and a replacement's join waits for it (kafka-python's default is
# 45 s, faust's 60 s; a broker's default group.min.session.timeout.ms is 6 s, the shortest
# it accepts). Heartbeats go every third of it.
GROUP_SESSION_TIMEOUT_SECONDS = 6.0
GROUP_HEARTBEAT_SECONDS = GROUP_SESSION_TIMEOUT_SECONDS / 3


def new_consumer(
    bootstrap: str, *topics: str, group_id: str | None = None, **options: Any
) -> KafkaConsumer:
    """A kafka-python consumer of ``topics`` in ``group_id`` (none: partitions are
    assigned by the caller), named after its process (``member_client_id``); ``options``
    are kafka-python's (fetch sizes...)."""
    session = {
        "session_timeout_ms": int(GROUP_SESSION_TIMEOUT_SECONDS * 1000),
        "heartbeat_interval_ms": int(GROUP_HEARTBEAT_SECONDS * 1000),
        "client_id": member_client_id(group_id or ""),
    }
    return KafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap.split(","),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **({**session, **options} if group_id else options),
        **kafka_python_options(security_for(bootstrap)),
    )


def new_aio_consumer(bootstrap: str, **options: Any) -> AIOKafkaConsumer:
    """An aiokafka consumer in no group (not started), for the followers; ``options`` are
    aiokafka's (fetch sizes...)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        **options,
        **aiokafka_options(process_security()),
    )


@asynccontextmanager
async def running(consumer: AIOKafkaConsumer) -> AsyncIterator[AIOKafkaConsumer]:
    """``consumer`` started, and stopped on the way out (even when it failed to start)."""
    try:
        await consumer.start()
        yield consumer
    finally:
        # aiokafka 0.14's stop awaits a task of start's that it cancels first: cancelled
        # before it ever ran, that task raises CancelledError into stop's caller (seen
        # when nothing was awaited between the two). Let it run once.
        await asyncio.sleep(0)
        await consumer.stop()


def new_aio_group_consumer(bootstrap: str, group_id: str, **options: Any) -> AIOKafkaConsumer:
    """An aiokafka consumer in ``group_id`` (not started), named after its process
    (``member_client_id``); ``options`` are aiokafka's (session and heartbeat timeouts...)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=group_id,
        **{"client_id": member_client_id(group_id), **options},
        **aiokafka_options(process_security()),
    )
