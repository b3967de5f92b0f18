"""``engine.kafka.faust_app.handle_batches`` where nothing needs reading from Kafka: records
that follow one another are handed on as they are, and faust's own gaps are refused on a
contiguous topic. (Holes read again from a real broker: tests/integration/
test_skipped_records.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import yarl
from faust.types import TP

from engine.kafka.faust_app import StreamRecord, handle_batches
from tests.unit.kafka.faust_stream_fakes import (
    FakeApp,
    FakeConf,
    FakeEvent,
    FakeMessage,
    SkippingStream,
    handled_batches,
    offsets_of,
)


def test_records_that_follow_one_another_are_handed_on_with_nothing_read_again() -> None:
    tp = TP("tickets.events.v1", 1)
    app = FakeApp(FakeConf([yarl.URL("kafka://127.0.0.1:9")]))  # nothing answers there
    app.consumer._committed_offset[tp] = 5
    events = [FakeEvent(FakeMessage(tp, offset, None, b"x")) for offset in (5, 6, 7)]

    assert offsets_of(handled_batches(SkippingStream(app, [events]))) == [5, 6, 7]
    assert app.consumer.gaps == []


def test_faust_s_own_gaps_are_not_recorded_in_a_contiguous_topic() -> None:
    app = FakeApp(FakeConf([yarl.URL("kafka://127.0.0.1:9")]))
    stream = SkippingStream(app, [])

    async def handle(records: Sequence[StreamRecord]) -> None:
        pass

    async def faust_sees_a_jump() -> None:
        await handle_batches(stream, handle, "test", contiguous=True)
        await app.consumer._add_gap(TP("tickets.events.v1", 0), 3, 8)
        await app.consumer._add_gap(TP("mail.spool.v1", 0), 3, 8)

    asyncio.run(faust_sees_a_jump())

    assert app.consumer.gaps == [(TP("mail.spool.v1", 0), 3, 8)]
