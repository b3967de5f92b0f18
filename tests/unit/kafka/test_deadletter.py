"""Dead letters: the input kept whole with the reason, or, when it cannot fit the
dead-letter topic, its first bytes and where the whole of it still is."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from engine.contract import RecordLocation, to_json
from engine.contract.topics import DEAD_LETTER_MAX_BYTES, MAIL_SPOOL
from engine.kafka.deadletter import MAX_PAYLOAD_BYTES, dead_letter

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SPOOLED = RecordLocation(topic=MAIL_SPOOL, partition=3, offset=1234)


def test_an_input_that_fits_is_kept_whole() -> None:
    letter = dead_letter(
        b"abc", reason="bad", field=None, origin="o", source="s", now=NOW, original=SPOOLED
    )

    assert base64.b64decode(letter.data.payload_base64) == b"abc"
    assert not letter.data.payload_truncated and letter.data.original == SPOOLED


def test_an_input_too_large_for_the_topic_is_truncated_and_points_at_its_original() -> None:
    payload = bytes(range(256)) * (17 * 1024 * 1024 // 256)  # base64: over 22 MB

    letter = dead_letter(
        payload, reason="too big", field=None, origin=MAIL_SPOOL, source="s", now=NOW,
        original=SPOOLED,
    )  # fmt: skip

    assert len(to_json(letter)) < DEAD_LETTER_MAX_BYTES
    kept = base64.b64decode(letter.data.payload_base64)
    assert kept == payload[:MAX_PAYLOAD_BYTES] and letter.data.payload_truncated
    assert letter.data.payload_sha256 == hashlib.sha256(payload).hexdigest()
    assert letter.data.payload_size == len(payload) and letter.data.original == SPOOLED
    assert f"{MAIL_SPOOL}[3]@1234" in letter.data.reason


def test_a_long_reason_is_bounded() -> None:
    letter = dead_letter(b"x", reason="r" * 100_000, field=None, origin="o", source="s", now=NOW)

    assert len(letter.data.reason) <= 4_000
