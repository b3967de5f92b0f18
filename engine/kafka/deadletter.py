"""Dead letters: input that could not be used, kept with the reason.

A dead letter keeps its input whole when it fits the dead-letter topic (``MAX_PAYLOAD_BYTES``
of input, base64-encoded, within ``DEAD_LETTER_MAX_BYTES``). A larger input is truncated to
its first bytes and marked so; its SHA-256 and size are those of the whole input, and
``original`` names the consumed record that still holds it (topic, partition, offset), so
nothing is lost and the dead letter itself always fits.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime

from engine import metrics
from engine.contract import DeadLetterData, RecordDeadLettered, RecordLocation
from engine.contract.identity import event_id
from engine.contract.topics import DEAD_LETTER_MAX_BYTES

# Room for the record's other fields (the reason, at most MAX_REASON_CHARS, escaped) and
# for the record batch's overhead; base64 makes 4 bytes of every 3.
MAX_PAYLOAD_BYTES = (DEAD_LETTER_MAX_BYTES - 256 * 1024) // 4 * 3
MAX_REASON_CHARS = 4_000


def dead_letter(
    payload: bytes,
    *,
    reason: str,
    field: str | None,
    origin: str,
    source: str,
    now: datetime,
    original: RecordLocation | None = None,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> RecordDeadLettered:
    """The record for ``deadletter.v1``; its id derives from origin and content, so the same
    input dead-lettered twice is recognisably the same. A payload over ``max_payload_bytes``
    is kept truncated, and refers to ``original`` for the rest. Counted in
    ``ticketing_dead_letters_total`` by the component named by ``source``."""
    digest = hashlib.sha256(payload).hexdigest()
    component = metrics.component_of_source(source)
    metrics.DEAD_LETTERS.labels(component, metrics.dead_letter_reason(reason)).inc()
    truncated = len(payload) > max_payload_bytes
    if truncated:
        where = (
            f"{original.topic}[{original.partition}]@{original.offset}"
            if original is not None
            else "its source"
        )
        reason = (
            f"{reason} (input of {len(payload):,} bytes kept truncated to "
            f"{max_payload_bytes:,}; whole at {where}, SHA-256 {digest})"
        )
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return RecordDeadLettered(
        event_id=event_id("deadletter", f"{origin}:{digest}"),
        occurred_at=now,
        source=source,
        data=DeadLetterData(
            reason=reason,
            field=field,
            origin=origin,
            payload_base64=base64.b64encode(payload[:max_payload_bytes]).decode(),
            payload_sha256=digest,
            payload_size=len(payload),
            payload_truncated=truncated,
            original=original,
        ),
    )


def location_of(record: object) -> RecordLocation | None:
    """Where a consumed record (kafka-python's or aiokafka's ConsumerRecord) is; None for
    anything without a topic, partition and offset."""
    topic = getattr(record, "topic", None)
    partition = getattr(record, "partition", None)
    offset = getattr(record, "offset", None)
    if not isinstance(topic, str) or not isinstance(partition, int):
        return None
    if not isinstance(offset, int):
        return None
    return RecordLocation(topic=topic, partition=partition, offset=offset)
