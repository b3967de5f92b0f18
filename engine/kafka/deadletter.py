"""Dead letters: input that could not be used, kept whole with the reason."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime

from engine import metrics
from engine.contract import DeadLetterData, RecordDeadLettered
from engine.contract.identity import event_id


def dead_letter(
    payload: bytes, *, reason: str, field: str | None, origin: str, source: str, now: datetime
) -> RecordDeadLettered:
    """The record for ``deadletter.v1``; its id derives from origin and content, so the same
    input dead-lettered twice is recognisably the same. Counted in
    ``ticketing_dead_letters_total`` by the component named by ``source``."""
    digest = hashlib.sha256(payload).hexdigest()
    component = metrics.component_of_source(source)
    metrics.DEAD_LETTERS.labels(component, metrics.dead_letter_reason(reason)).inc()
    return RecordDeadLettered(
        event_id=event_id("deadletter", f"{origin}:{digest}"),
        occurred_at=now,
        source=source,
        data=DeadLetterData(
            reason=reason,
            field=field,
            origin=origin,
            payload_base64=base64.b64encode(payload).decode(),
            payload_sha256=digest,
            payload_size=len(payload),
        ),
    )
