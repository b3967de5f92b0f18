"""The SLA worker's rows: a resolved ticket's row is deleted, a reopened ticket gets a
fresh one, and the alert keys ``ticket:UPD-Px:n`` of its earlier life never come back."""

from __future__ import annotations

import random
from datetime import timedelta
from itertools import pairwise

import pytest

from engine.contract import ActivityType, Priority, ThirdPartyWait, ThirdPartyWaitKind, TicketStatus
from engine.sla.alerts import step
from engine.sla.facts import counted_rearmings, facts_of
from engine.sla.obligations import SlaPolicy, next_update_due
from engine.sla.rows import RowChange, row_change
from tests.unit.sla.test_facts_and_index import CALENDAR, DIRECTORY, OPENED, Fold, opened_ticket


def test_a_resolution_deletes_the_row_and_a_resolved_ticket_without_one_gets_none() -> None:
    open_facts = facts_of(opened_ticket(), DIRECTORY)
    resolved = open_facts.model_copy(update={"status": TicketStatus.RESOLVED})
    assert row_change(open_facts, resolved, armed=False) is RowChange.DELETE
    assert row_change(None, resolved, armed=False) is RowChange.KEEP


def test_a_paused_wait_keeps_its_row_and_unchanged_facts_write_nothing() -> None:
    open_facts = facts_of(opened_ticket(), DIRECTORY)
    waiting = open_facts.model_copy(update={"status": TicketStatus.WAITING_ON_CUSTOMER})
    assert row_change(open_facts, waiting, armed=False) is RowChange.WRITE
    assert row_change(waiting, waiting, armed=False) is RowChange.KEEP
    assert row_change(open_facts, open_facts, armed=True) is RowChange.KEEP
    assert row_change(None, open_facts, armed=True) is RowChange.WRITE


def test_alerts_sent_before_a_resolution_are_not_sent_again_after_the_reopening() -> None:
    fold, policy = Fold(), SlaPolicy()
    first = next_update_due(fold.facts, CALENDAR, policy)
    assert first is not None and first.key == "T-AAAAAAAAAAAAA:UPD-P1:1"
    sent = step(first, None, CALENDAR, policy, OPENED + timedelta(hours=5))
    assert sent.emit is not None and sent.progress.breaches == 2  # warning, breach, repeat
    fold.act(ActivityType.RESOLVED, 300)
    assert fold.row is None and fold.key() is None
    fold.act(ActivityType.REOPENED, 360)
    again = next_update_due(fold.facts, CALENDAR, policy)
    assert again is not None
    # Event 3 reopened it: a new key, armed at the reopening, alerting from its warning.
    assert again.key == "T-AAAAAAAAAAAAA:UPD-P1:3" and again.armed_by == "ticket open again"
    assert again.deadline == OPENED + timedelta(minutes=360 + 120)
    fresh = step(again, sent.progress, CALENDAR, policy, again.deadline - timedelta(minutes=30))
    assert fresh.emit is not None and fresh.emit.is_warning
    assert fresh.progress.key == again.key


def test_a_reopened_ticket_the_customer_writes_to_is_numbered_above_its_past() -> None:
    fold = Fold()
    for minutes in (10, 20, 30):
        fold.act(ActivityType.CUSTOMER_INFORMED, minutes)
    assert fold.key() == "T-AAAAAAAAAAAAA:UPD-P1:4"
    fold.act(ActivityType.RESOLVED, 40)
    fold.act(ActivityType.NOTE, 50, note="resolved tickets take notes: still no row")
    assert fold.row is None
    fold.act(ActivityType.CUSTOMER_REPLIED, 60)  # a reply reopens it
    assert fold.key() == "T-AAAAAAAAAAAAA:UPD-P1:7"


def test_the_fold_never_numbers_past_the_ticket_s_event_count() -> None:
    ticket = opened_ticket().model_copy(update={"event_count": 5, "informed_count": 2})
    assert counted_rearmings(ticket, folded=9, first_seen=False) == 2  # n = 2 + 2 + 1 = 5
    assert counted_rearmings(ticket, folded=1, first_seen=False) == 1
    assert counted_rearmings(ticket, folded=0, first_seen=True) == 2


class Reprioritised(Fold):
    def reprioritise(self, priority: Priority, minutes_later: int) -> None:
        at = OPENED + timedelta(minutes=minutes_later)
        self.ticket = self.ticket.model_copy(
            update={
                "priority": priority,
                "priority_since": at,
                "updated_at": at,
                "event_count": self.ticket.event_count + 1,
            }
        )
        self.facts = facts_of(self.ticket, DIRECTORY, self.row, self.pause)
        armed = next_update_due(self.facts, CALENDAR, self.policy) is not None
        change = row_change(self.row, self.facts, armed)
        if change is not RowChange.KEEP:
            self.row = None if change is RowChange.DELETE else self.facts


VENDOR_CASE = ThirdPartyWait(kind=ThirdPartyWaitKind.VENDOR, reference="CASE-4711")
ALLOWED: dict[TicketStatus, list[ActivityType | None]] = {
    TicketStatus.OPEN: [
        ActivityType.CUSTOMER_INFORMED, ActivityType.WAITING_ON_CUSTOMER,
        ActivityType.WAITING_ON_THIRD_PARTY, ActivityType.RESOLVED, ActivityType.NOTE,
        ActivityType.CUSTOMER_REPLIED, None,
    ],
    TicketStatus.WAITING_ON_CUSTOMER: [
        ActivityType.CUSTOMER_REPLIED, ActivityType.RESOLVED, ActivityType.CUSTOMER_INFORMED,
        ActivityType.WAITING_ON_THIRD_PARTY, None,
    ],
    TicketStatus.WAITING_ON_THIRD_PARTY: [
        ActivityType.THIRD_PARTY_ANSWERED, ActivityType.CUSTOMER_REPLIED, ActivityType.RESOLVED,
        ActivityType.CUSTOMER_INFORMED, None,
    ],
    TicketStatus.RESOLVED: [
        ActivityType.REOPENED, ActivityType.CUSTOMER_REPLIED, ActivityType.NOTE,
    ],
}  # fmt: skip


@pytest.mark.parametrize("pause", [True, False])
def test_no_key_comes_back_over_random_ticket_lives(pause: bool) -> None:
    rng = random.Random(30 + pause)
    for _ in range(300):
        fold = Reprioritised(pause=pause)
        keys = [fold.key()]
        for minutes in range(10, 400, 10):
            kind = rng.choice(ALLOWED[fold.ticket.status])
            if kind is None:
                fold.reprioritise(rng.choice(list(Priority)), minutes)
            else:
                fold.act(kind, minutes, note="n", waiting_on=VENDOR_CASE)
            keys.append(fold.key())
            if fold.ticket.status is TicketStatus.RESOLVED:
                assert fold.row is None
        left: set[str] = set()
        for before, after in pairwise(keys):
            if before is not None and after != before:
                left.add(before)
            assert after not in left, (keys, after)
