"""The facts the SLA worker folds from ticket states (through apply_activity, as the
processor does, counting the events), the rows it keeps and deletes, and the due index its
timer asks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.contract import (
    ActivityType,
    Channel,
    Priority,
    SlaClockData,
    SlaClockUpdated,
    SlaFacts,
    SupportPlan,
    ThirdPartyWait,
    ThirdPartyWaitKind,
    TicketActivityData,
    TicketState,
    TicketStatus,
    Tier,
    to_json,
)
from engine.contract.customers import Customer, CustomerDirectory
from engine.sla.calendars import DEFAULT_CALENDARS
from engine.sla.facts import facts_of
from engine.sla.index import DueIndex
from engine.sla.obligations import SlaPolicy, next_update_due
from engine.sla.rows import RowChange, row_change
from engine.sla.worker import index_entry
from engine.triage.activity import apply_activity

OPENED = datetime(2026, 11, 23, 16, tzinfo=UTC)
DIRECTORY = CustomerDirectory(
    [Customer(id="acme", plan=SupportPlan.ALWAYS, timezone="Europe/Madrid", calendar="24x7")]
)
CALENDAR = DEFAULT_CALENDARS.named("24x7").in_zone("Europe/Madrid")


def opened_ticket() -> TicketState:
    return TicketState(
        ticket_id="T-AAAAAAAAAAAAA", status=TicketStatus.OPEN, channel=Channel.EMAIL,
        subject="s", requester="c@acme.example", customer_id="acme", opened_at=OPENED,
        updated_at=OPENED, priority=Priority.P1, category="pbx_down", tier=Tier.L3,
        special_routes=(), tags=(), event_count=1, recent_event_ids=("e1",),
        ruleset_version="v", priority_since=OPENED, status_since=OPENED,
    )  # fmt: skip


class Fold:
    """Ticket states through apply_activity (each one more event, as the processor counts
    them), the facts the worker derives and the row it keeps: none after a resolution."""

    def __init__(self, pause: bool = True) -> None:
        self.pause = pause
        self.policy = SlaPolicy(pause_while_waiting=pause)
        self.ticket = opened_ticket()
        self.facts: SlaFacts = facts_of(self.ticket, DIRECTORY, None, pause)
        self.row: SlaFacts | None = self.facts

    def act(self, kind: ActivityType, minutes_later: int, **fields: object) -> SlaFacts:
        activity = TicketActivityData.model_validate(
            {"ticket_id": self.ticket.ticket_id, "activity": kind, "actor": "ana", **fields}
        )
        at = OPENED + timedelta(minutes=minutes_later)
        ticket = apply_activity(self.ticket, activity, at)
        self.ticket = ticket.model_copy(update={"event_count": ticket.event_count + 1})
        self.facts = facts_of(self.ticket, DIRECTORY, self.row, self.pause)
        armed = next_update_due(self.facts, CALENDAR, self.policy) is not None
        match row_change(self.row, self.facts, armed):
            case RowChange.WRITE:
                self.row = self.facts
            case RowChange.DELETE:
                self.row = None
        return self.facts

    def key(self) -> str | None:
        obligation = next_update_due(self.facts, CALENDAR, self.policy)
        return obligation.key if obligation else None

    def deadline(self) -> datetime | None:
        obligation = next_update_due(self.facts, CALENDAR, self.policy)
        return obligation.deadline if obligation else None


def test_the_customer_s_plan_zone_and_calendar_come_from_the_directory() -> None:
    facts = Fold().facts
    assert (facts.plan, facts.timezone, facts.calendar) == (
        SupportPlan.ALWAYS,
        "Europe/Madrid",
        "24x7",
    )


def test_a_customer_reply_does_not_reset_the_obligation() -> None:
    fold = Fold()
    before = fold.deadline()
    fold.act(ActivityType.CUSTOMER_REPLIED, 30)
    assert fold.deadline() == before == OPENED + timedelta(hours=2)


def test_a_reply_ending_a_wait_does_not_reset_a_clock_that_ran_through_it() -> None:
    fold = Fold(pause=False)
    fold.act(ActivityType.WAITING_ON_CUSTOMER, 30)
    fold.act(ActivityType.CUSTOMER_REPLIED, 60)
    assert fold.ticket.status is TicketStatus.OPEN
    assert fold.deadline() == OPENED + timedelta(hours=2)


def test_a_reply_ending_a_paused_wait_restarts_the_cadence_under_a_new_key() -> None:
    fold = Fold(pause=True)
    fold.act(ActivityType.WAITING_ON_CUSTOMER, 30)
    assert fold.deadline() is None
    facts = fold.act(ActivityType.CUSTOMER_REPLIED, 300)
    assert (facts.resumed_at, facts.rearmings) == (OPENED + timedelta(minutes=300), 1)
    assert fold.deadline() == OPENED + timedelta(minutes=420)


RMA = ThirdPartyWait(kind=ThirdPartyWaitKind.RMA, reference="RMA-2026-0042")


@pytest.mark.parametrize("pause", [True, False])
def test_a_third_party_wait_never_pauses_the_obligation_nor_does_its_end_reset_it(
    pause: bool,
) -> None:
    fold = Fold(pause=pause)
    key, due = fold.key(), fold.deadline()
    fold.act(ActivityType.WAITING_ON_THIRD_PARTY, 30, waiting_on=RMA)
    assert fold.ticket.status is TicketStatus.WAITING_ON_THIRD_PARTY
    assert (fold.key(), fold.deadline()) == (key, due) == (fold.key(), OPENED + timedelta(hours=2))
    fold.act(ActivityType.CUSTOMER_REPLIED, 60)  # still waiting on the RMA
    assert (fold.ticket.status, fold.deadline()) == (TicketStatus.WAITING_ON_THIRD_PARTY, due)
    fold.act(ActivityType.CUSTOMER_INFORMED, 90)  # news of the wait: the next update is due
    assert fold.deadline() == OPENED + timedelta(minutes=210)
    answered = fold.act(ActivityType.THIRD_PARTY_ANSWERED, 100)
    assert answered.status is TicketStatus.OPEN
    assert fold.deadline() == OPENED + timedelta(minutes=210)


def test_a_third_party_wait_after_a_paused_wait_restarts_the_cadence() -> None:
    fold = Fold(pause=True)
    fold.act(ActivityType.WAITING_ON_CUSTOMER, 30)
    assert fold.deadline() is None
    facts = fold.act(ActivityType.WAITING_ON_THIRD_PARTY, 300, waiting_on=RMA)
    assert (facts.resumed_at, facts.rearmings) == (OPENED + timedelta(minutes=300), 1)
    assert fold.deadline() == OPENED + timedelta(minutes=420)


def test_resolving_and_reopening_re_arms_under_a_new_key() -> None:
    fold = Fold()
    fold.act(ActivityType.CUSTOMER_INFORMED, 60)
    fold.act(ActivityType.RESOLVED, 90)
    assert fold.deadline() is None and fold.row is None
    fold.act(ActivityType.REOPENED, 600)
    obligation = next_update_due(fold.facts, CALENDAR)
    assert obligation is not None
    # Opened (event 1, #1), informed (event 2, #2), resolved (event 3: the row is deleted),
    # reopened (event 4): numbered from the event count, above every key of before.
    assert obligation.key == "T-AAAAAAAAAAAAA:UPD-P1:4"
    assert obligation.deadline == OPENED + timedelta(minutes=720)


def test_the_index_pops_only_what_is_due_and_forgets_rescheduled_entries() -> None:
    index = DueIndex()
    index.assign(0, [("T-a", OPENED), ("T-b", OPENED + timedelta(hours=1))])
    index.assign(1, [("T-c", OPENED + timedelta(minutes=30))])
    index.schedule(0, "T-a", OPENED + timedelta(hours=2))  # re-armed later: old entry stale
    assert index.pop_due(OPENED) == []
    assert index.pop_due(OPENED + timedelta(hours=1)) == [(0, "T-b"), (1, "T-c")]
    index.revoke(0)
    assert index.pop_due(OPENED + timedelta(days=1)) == []
    assert index.partitions == frozenset({1}) and len(index) == 0
    index.schedule(0, "T-x", OPENED)  # a partition not owned: ignored
    assert len(index) == 0


def test_the_index_is_rebuilt_from_table_rows_read_lightly() -> None:
    facts = facts_of(opened_ticket(), DIRECTORY)
    armed = SlaClockData(
        ticket_id=facts.ticket_id, partition=4, facts=facts, progress=None,
        next_alert_at=OPENED + timedelta(hours=2),
    )  # fmt: skip
    disarmed = armed.model_copy(update={"next_alert_at": None})

    def row(data: SlaClockData) -> bytes:
        return to_json(SlaClockUpdated(event_id="e", occurred_at=OPENED, source="t", data=data))

    assert index_entry(row(armed)) == (4, facts.ticket_id, OPENED + timedelta(hours=2))
    assert index_entry(row(disarmed)) == (4, facts.ticket_id, None)
