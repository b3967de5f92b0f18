"""Publishing an ingested event: acknowledged by Kafka (acks=all, idempotent) within a
bound, or a PublishError so the ingestor tells its sender to retry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from engine.contract.topics import DEAD_LETTER_MAX_BYTES
from engine.errors import PublishError
from engine.kafka.producer import new_aio_producer

log = logging.getLogger(__name__)


class Publisher(Protocol):
    async def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Return once Kafka acknowledged the record; raise PublishError otherwise."""


class KafkaPublisher:
    """An aiokafka producer of the engine's factory that (re)connects lazily, so an
    ingestor keeps answering its senders (with "retry later") while Kafka is away. Its
    own deadline (``ack_timeout_seconds``) bounds every wait for Kafka."""

    def __init__(self, bootstrap: str, ack_timeout_seconds: float, client_id: str) -> None:
        self._bootstrap = bootstrap
        self._timeout = ack_timeout_seconds
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()
        self._enqueueing = asyncio.Lock()

    async def _connected(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._starting:
            if self._producer is not None:
                return self._producer
            producer = new_aio_producer(
                self._bootstrap,
                client_id=self._client_id,
                # Dead letters keep their input whole; the topic allows it (topics.py).
                max_request_size=DEAD_LETTER_MAX_BYTES + 64 * 1024,
            )
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
            return producer

    async def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._send(topic, key, value)
        except TimeoutError as error:
            raise PublishError(
                f"Kafka did not acknowledge within {self._timeout:g}s ({topic})"
            ) from error
        except KafkaError as error:
            await self._reset()
            raise PublishError(f"Kafka refused the record ({topic}): {error}") from error

    async def publish_many(
        self, topic: str, records: list[tuple[bytes | None, bytes]]
    ) -> list[PublishError | None]:
        """Publish records together (one enqueue each, one wait for all acks): for each,
        None once Kafka acknowledged it, else the PublishError. For high-rate ingest."""
        try:
            # Enqueued under a lock taken first thing, so concurrent calls keep their order.
            async with self._enqueueing:
                producer = await asyncio.wait_for(self._connected(), timeout=self._timeout)
                futures = [await producer.send(topic, value, key=key) for key, value in records]
        except (TimeoutError, KafkaError, OSError) as error:
            await self._reset()
            failed = PublishError(f"Kafka unavailable ({topic}): {error!r}")
            return [failed] * len(records)
        done, _ = await asyncio.wait(futures, timeout=self._timeout)
        outcomes: list[PublishError | None] = []
        broken = False
        for future in futures:
            if future not in done:
                future.cancel()
                outcomes.append(
                    PublishError(f"Kafka did not acknowledge within {self._timeout:g}s ({topic})")
                )
            elif future.exception() is not None:
                broken = True
                outcomes.append(
                    PublishError(f"Kafka refused the record ({topic}): {future.exception()}")
                )
            else:
                outcomes.append(None)
        if broken:
            await self._reset()
        return outcomes

    async def _send(self, topic: str, key: bytes | None, value: bytes) -> None:
        producer = await self._connected()
        await producer.send_and_wait(topic, value, key=key)

    async def _reset(self) -> None:
        """Drop a producer that failed, so the next publish starts a fresh one."""
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def start(self) -> bool:
        """Connect now if Kafka answers; False (not an error) when it does not yet."""
        try:
            await asyncio.wait_for(self._connected(), timeout=self._timeout)
        except (TimeoutError, KafkaError, OSError) as error:
            log.warning("Kafka at %s not reachable yet: %s", self._bootstrap, error)
            return False
        return True

    async def stop(self) -> None:
        await self._reset()
