"""``engine tail TOPIC``: a topic's records as JSON lines, from the start or following."""

from __future__ import annotations

import base64
import json
import sys
import time
from typing import Any, TextIO

from kafka import KafkaConsumer, TopicPartition

from engine.errors import EngineError
from engine.kafka.security import kafka_python_options, security_for


def render(value: bytes | None, key: bytes | None, meta: dict[str, Any] | None) -> str:
    """The record's JSON value as one line; a value that is not JSON is shown in base64."""
    try:
        body: Any = json.loads(value) if value is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        body = {"value_base64": base64.b64encode(value or b"").decode()}
    if meta is not None:
        body = {**meta, "key": key.decode(errors="replace") if key else None, "value": body}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def tail(
    bootstrap: str,
    topic: str,
    *,
    follow: bool = False,
    from_beginning: bool = True,
    limit: int | None = None,
    timeout_seconds: float = 5.0,
    with_meta: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Print records; without ``follow``, stop at the end offsets seen at the start (or
    after ``timeout_seconds`` without progress)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=int(timeout_seconds * 1000) if not follow else float("inf"),
        **kafka_python_options(security_for(bootstrap)),
    )
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise EngineError(f"no topic {topic!r} on {bootstrap} (see 'engine topics list')")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        if from_beginning:
            consumer.seek_to_beginning(*assigned)
        else:
            consumer.seek_to_end(*assigned)
        end = consumer.end_offsets(assigned)
        printed = 0
        last_progress = time.monotonic()
        while True:
            if not follow and all(consumer.position(tp) >= end[tp] for tp in assigned):
                break
            if not follow and time.monotonic() - last_progress > timeout_seconds:
                break
            batches = consumer.poll(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    meta = (
                        {"partition": record.partition, "offset": record.offset}
                        if with_meta
                        else None
                    )
                    print(render(record.value, record.key, meta), file=out, flush=True)
                    printed += 1
                    last_progress = time.monotonic()
                    if limit is not None and printed >= limit:
                        return 0
    finally:
        consumer.close()
    return 0
