"""Every producer of the engine, from one place: acks from every in-sync replica, idempotent,
and the same timeouts, for kafka-python (the synchronous processes and tools), aiokafka
(the asyncio ingestors and the API) and faust (the processor and the SLA worker).

Idempotence is asked for explicitly: kafka-python 3 turns it on by default but turns it
off again, with only a warning, when another setting conflicts; asked for, a conflict is
an error at start. What differs by use (the largest request, lingering to fill a batch)
is a parameter; the guarantees and the timeouts are not.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from kafka import KafkaProducer

from engine.kafka.security import (
    aiokafka_options,
    kafka_python_options,
    process_security,
    security_for,
)

ACKS = "all"
# How long one request to a broker may take before it is retried or fails.
REQUEST_TIMEOUT_SECONDS = 10.0
# A record's whole life after send(), retries included: by then Kafka acknowledged it or
# its future failed. The consume loops give a batch up (and read it again) after this.
DELIVERY_TIMEOUT_SECONDS = 30.0
# How long send() may block for the topic's metadata or buffer space.
MAX_BLOCK_SECONDS = 10.0
# Kafka's default largest request; a producer of dead letters asks for more.
DEFAULT_MAX_REQUEST_BYTES = 1_048_576

Record = tuple[str, bytes | None, bytes]
"""What a producer sends: topic, key, value."""


class Producer(Protocol):
    """What the engine uses of a kafka-python producer (a fake in tests)."""

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> Any: ...

    def close(self, timeout: float | None = None) -> None: ...


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def new_producer(
    bootstrap: str,
    *,
    client_id: str | None = None,
    linger_ms: int = 0,
    max_request_size: int = DEFAULT_MAX_REQUEST_BYTES,
) -> KafkaProducer:
    """A kafka-python producer; raises a KafkaError when no broker answers."""
    options: dict[str, Any] = {"client_id": client_id} if client_id else {}
    return KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks=ACKS,
        enable_idempotence=True,
        request_timeout_ms=_ms(REQUEST_TIMEOUT_SECONDS),
        delivery_timeout_ms=_ms(DELIVERY_TIMEOUT_SECONDS),
        max_block_ms=_ms(MAX_BLOCK_SECONDS),
        linger_ms=linger_ms,
        max_request_size=max_request_size,
        **options,
        **kafka_python_options(security_for(bootstrap)),
    )


def new_aio_producer(
    bootstrap: str,
    *,
    client_id: str | None = None,
    linger_ms: int = 0,
    max_request_size: int = DEFAULT_MAX_REQUEST_BYTES,
) -> AIOKafkaProducer:
    """An aiokafka producer (not started). aiokafka has one timeout for a request, the wait
    for metadata and a batch's expiry: it gets the delivery bound."""
    options: dict[str, Any] = {"client_id": client_id} if client_id else {}
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=ACKS,
        enable_idempotence=True,
        request_timeout_ms=_ms(DELIVERY_TIMEOUT_SECONDS),
        linger_ms=linger_ms,
        max_request_size=max_request_size,
        **options,
        **aiokafka_options(process_security()),
    )


def faust_producer_settings() -> dict[str, Any]:
    """faust's producer settings (its own aiokafka producer): acks from every in-sync
    replica, and a batch expires after the delivery bound (faust's default is 20 minutes).
    faust 0.15 turns idempotence on only inside transactions, which the engine does not
    use (DESIGN.md): its agents' outputs are deduplicated by their event ids."""
    return {"producer_acks": -1, "producer_request_timeout": DELIVERY_TIMEOUT_SECONDS}


def send_all(producer: Producer, records: Iterable[Record]) -> None:
    """Send the records and return once Kafka acknowledged every one of them; raise the
    KafkaError of the first it did not take."""
    futures = [producer.send(topic, key=key, value=value) for topic, key, value in records]
    for future in futures:
        future.get(timeout=DELIVERY_TIMEOUT_SECONDS)


def publish(bootstrap: str, records: Iterable[Record]) -> None:
    """For a command that writes a few records and ends (``engine rules publish``, a
    top-up): a producer for them alone, closed once Kafka acknowledged them."""
    producer = new_producer(bootstrap)
    try:
        send_all(producer, records)
    finally:
        producer.close(timeout=DELIVERY_TIMEOUT_SECONDS)
