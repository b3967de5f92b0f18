"""What the tier workers make of each record they follow: a ticket's state or an agent's
presence deleted (a tombstone on a compacted topic) is forgotten; a record they cannot use,
whatever it makes the desk raise, is a dead letter naming it."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from engine.contract import (
    Presence,
    Priority,
    Standing,
    TicketUpdated,
    TicketUpdatedData,
    Tier,
    to_json,
)
from engine.contract.topics import AGENTS_PRESENCE, SLA_ALERTS, TICKET_STATE
from engine.workers.desk import Desk
from engine.workers.escalation import AcceptanceTime
from engine.workers.service import UnusableRecordError, feed, parsed, unusable_letter
from tests.unit.workers.test_desk import MONDAY, desk, ticket

END_OF_TIME = datetime(9999, 12, 31, 23, 50, tzinfo=UTC)


@dataclass(frozen=True)
class Consumed:
    """A consumed record, as much of it as the workers read."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int = 0
    offset: int = 7


def state_of(ticket_id: str, **changes: Any) -> Consumed:
    record = TicketUpdated(
        event_id=f"u:{ticket_id}", occurred_at=MONDAY, source="test",
        data=TicketUpdatedData(ticket=ticket(ticket_id, **changes)),
    )  # fmt: skip
    return Consumed(TICKET_STATE, ticket_id.encode(), to_json(record))


def test_a_deleted_ticket_state_is_forgotten_as_if_resolved() -> None:
    office = desk()
    office.apply_presence("ana", Presence.AWAY)
    office.apply_presence("eva", Presence.AWAY)
    feed(office, state_of("T-1"))
    assert office.waiting() == {(Tier.L3, Priority.P3): 1}
    assert feed(office, Consumed(TICKET_STATE, b"T-1", None)) == "T-1"
    assert office.state_of("T-1") is None
    assert office.waiting() == {}


def test_a_deleted_presence_leaves_the_agent_without_a_word_from_them() -> None:
    office = desk()
    office.apply_presence("ana", Presence.AWAY)
    assert office.standing("ana") is Standing.AWAY
    assert feed(office, Consumed(AGENTS_PRESENCE, b"ana", None)) is None
    assert office.standing("ana") is Standing.ABLE


def test_a_tombstone_where_nothing_is_deleted_or_a_record_of_another_topic_is_refused() -> None:
    alert_with_a_state = Consumed(SLA_ALERTS, b"k", state_of("T-1").value)
    for record in (Consumed(SLA_ALERTS, b"k", None), alert_with_a_state):
        with pytest.raises(UnusableRecordError):
            parsed(record)
    with pytest.raises(ValidationError):
        parsed(Consumed(TICKET_STATE, b"k", b"not json {"))


def test_a_state_that_makes_the_desk_raise_is_a_dead_letter_naming_the_record() -> None:
    """Not accepted yet, assigned at the end of year 9999: its deadline for acceptance
    does not fit a datetime."""
    acceptance = {Priority.P3: AcceptanceTime("15 minutes", wall=timedelta(minutes=15))}
    office = Desk(desk().directory, MONDAY, acceptance)
    record = state_of("T-1", assignee="ana", assigned_at=END_OF_TIME)
    with pytest.raises(OverflowError) as raised:
        feed(office, record)
    letter = unusable_letter(record, raised.value, MONDAY)
    assert letter.data.reason.startswith("processing failed: OverflowError")
    assert letter.data.origin == TICKET_STATE
    assert letter.data.original is not None and letter.data.original.offset == 7
