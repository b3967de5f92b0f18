"""The topic contract declares what is written to each topic."""

from __future__ import annotations

import typing

from engine.contract import IncomingTicketEvent
from engine.contract.topics import TICKET_EVENTS, declared_topics


def test_the_ticket_events_topic_declares_every_record_the_processor_reads_from_it() -> None:
    union = typing.get_args(IncomingTicketEvent)[0]
    incoming = set(typing.get_args(union))
    (events,) = [spec for spec in declared_topics() if spec.name == TICKET_EVENTS]
    assert incoming == set(events.records)
