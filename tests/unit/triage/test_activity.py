"""apply_activity: every kind of activity, allowed and refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.contract import (
    ActivityType,
    Channel,
    Priority,
    ThirdPartyWait,
    ThirdPartyWaitKind,
    TicketActivityData,
    TicketState,
    TicketStatus,
    Tier,
)
from engine.triage.activity import InvalidTransitionError, apply_activity

OPENED = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
AT = OPENED + timedelta(hours=1)


VENDOR_CASE = ThirdPartyWait(kind=ThirdPartyWaitKind.VENDOR, reference="CASE-4711")
RMA = ThirdPartyWait(kind=ThirdPartyWaitKind.RMA, reference="RMA-2026-0042")


def ticket(status: TicketStatus = TicketStatus.OPEN, tier: Tier = Tier.L1) -> TicketState:
    waits_on_vendor = status is TicketStatus.WAITING_ON_THIRD_PARTY
    return TicketState(
        ticket_id="T-AAAAAAAAAAAAA",
        status=status,
        channel=Channel.EMAIL,
        subject="s",
        requester="c@acme.example",
        customer_id="acme",
        opened_at=OPENED,
        updated_at=OPENED,
        priority=Priority.P3,
        category="other",
        tier=tier,
        special_routes=(),
        tags=(),
        event_count=1,
        recent_event_ids=("e1",),
        ruleset_version="v",
        resolved_at=OPENED if status is TicketStatus.RESOLVED else None,
        waiting_on=VENDOR_CASE if waits_on_vendor else None,
    )


def act(kind: ActivityType, **fields: object) -> TicketActivityData:
    return TicketActivityData.model_validate(
        {"ticket_id": "T-AAAAAAAAAAAAA", "activity": kind, "actor": "ana", **fields}
    )


@pytest.mark.parametrize(
    ("before", "activity", "expected"),
    [
        (ticket(), act(ActivityType.ASSIGNED, assignee="bob"), {"assignee": "bob"}),
        (
            ticket(),
            act(ActivityType.CUSTOMER_INFORMED, message="m"),
            {"informed_count": 1, "last_informed_at": AT},
        ),
        (ticket(), act(ActivityType.ESCALATED, tier=Tier.L2), {"tier": Tier.L2}),
        (
            ticket(),
            act(ActivityType.WAITING_ON_CUSTOMER),
            {"status": TicketStatus.WAITING_ON_CUSTOMER, "status_since": AT},
        ),
        (ticket(), act(ActivityType.TIME_SPENT, minutes=30), {"time_spent_minutes": 30}),
        (
            ticket(),
            act(ActivityType.RESOLVED),
            {"status": TicketStatus.RESOLVED, "resolved_at": AT, "status_since": AT},
        ),
        (
            ticket(TicketStatus.RESOLVED),
            act(ActivityType.REOPENED),
            {"status": TicketStatus.OPEN, "resolved_at": None},
        ),
        (
            ticket(TicketStatus.WAITING_ON_CUSTOMER),
            act(ActivityType.CUSTOMER_REPLIED),
            {"status": TicketStatus.OPEN, "last_customer_contact_at": AT},
        ),
        (ticket(TicketStatus.RESOLVED), act(ActivityType.NOTE, note="n"), {}),
        (ticket(TicketStatus.RESOLVED), act(ActivityType.TIME_SPENT, minutes=5), {}),
        (
            ticket(),
            act(ActivityType.WAITING_ON_THIRD_PARTY, waiting_on=VENDOR_CASE),
            {"status": TicketStatus.WAITING_ON_THIRD_PARTY, "status_since": AT,
             "waiting_on": VENDOR_CASE},
        ),
        (
            ticket(TicketStatus.WAITING_ON_CUSTOMER),
            act(ActivityType.WAITING_ON_THIRD_PARTY, waiting_on=RMA),
            {"status": TicketStatus.WAITING_ON_THIRD_PARTY, "waiting_on": RMA},
        ),
        (  # the vendor asked for an RMA: what it waits on changes, the wait goes on
            ticket(TicketStatus.WAITING_ON_THIRD_PARTY),
            act(ActivityType.WAITING_ON_THIRD_PARTY, waiting_on=RMA),
            {"status": TicketStatus.WAITING_ON_THIRD_PARTY, "status_since": None,
             "waiting_on": RMA},
        ),
        (
            ticket(TicketStatus.WAITING_ON_THIRD_PARTY),
            act(ActivityType.THIRD_PARTY_ANSWERED, note="fix in 4.0.3"),
            {"status": TicketStatus.OPEN, "status_since": AT, "waiting_on": None},
        ),
        (  # the customer cannot answer for the vendor
            ticket(TicketStatus.WAITING_ON_THIRD_PARTY),
            act(ActivityType.CUSTOMER_REPLIED),
            {"status": TicketStatus.WAITING_ON_THIRD_PARTY, "waiting_on": VENDOR_CASE,
             "last_customer_contact_at": AT},
        ),
        (  # informing the customer is the cadence, not the end of the wait
            ticket(TicketStatus.WAITING_ON_THIRD_PARTY),
            act(ActivityType.CUSTOMER_INFORMED, message="the vendor is on it"),
            {"status": TicketStatus.WAITING_ON_THIRD_PARTY, "informed_count": 1},
        ),
        (
            ticket(TicketStatus.WAITING_ON_THIRD_PARTY),
            act(ActivityType.ASSIGNED, assignee="bob"),
            {"status": TicketStatus.WAITING_ON_THIRD_PARTY, "assignee": "bob"},
        ),
        (
            ticket(TicketStatus.WAITING_ON_THIRD_PARTY),
            act(ActivityType.RESOLVED),
            {"status": TicketStatus.RESOLVED, "resolved_at": AT, "waiting_on": None},
        ),
    ],
)  # fmt: skip
def test_an_allowed_activity_changes_just_its_fields(
    before: TicketState, activity: TicketActivityData, expected: dict[str, object]
) -> None:
    after = apply_activity(before, activity, AT)

    assert after.updated_at == AT
    for name, value in expected.items():
        assert getattr(after, name) == value, name


@pytest.mark.parametrize(
    ("before", "activity", "reason"),
    [
        (None, act(ActivityType.NOTE, note="n"), "no ticket T-AAAAAAAAAAAAA"),
        (ticket(TicketStatus.RESOLVED), act(ActivityType.CUSTOMER_INFORMED), "is resolved"),
        (ticket(TicketStatus.RESOLVED), act(ActivityType.RESOLVED), "already resolved"),
        (ticket(TicketStatus.RESOLVED), act(ActivityType.ASSIGNED, assignee="b"), "is resolved"),
        (ticket(), act(ActivityType.REOPENED), "is not resolved"),
        (ticket(), act(ActivityType.ASSIGNED), "'assignee' is required"),
        (ticket(), act(ActivityType.NOTE), "'note' is required"),
        (ticket(), act(ActivityType.ESCALATED), "'tier' is required"),
        (ticket(tier=Tier.L2), act(ActivityType.ESCALATED, tier=Tier.L1), "higher tier"),
        (ticket(tier=Tier.L3), act(ActivityType.ESCALATED, tier=Tier.L3), "higher tier"),
        (ticket(), act(ActivityType.TIME_SPENT), "'minutes' must be more than 0"),
        (
            ticket(TicketStatus.WAITING_ON_CUSTOMER),
            act(ActivityType.WAITING_ON_CUSTOMER),
            "already waits",
        ),
        (
            ticket(TicketStatus.RESOLVED),
            act(ActivityType.WAITING_ON_THIRD_PARTY, waiting_on=VENDOR_CASE),
            "is resolved: reopen it before 'waiting_on_third_party'",
        ),
        (ticket(), act(ActivityType.WAITING_ON_THIRD_PARTY), "'waiting_on' .* is required"),
        (
            ticket(TicketStatus.WAITING_ON_THIRD_PARTY),
            act(ActivityType.WAITING_ON_THIRD_PARTY, waiting_on=VENDOR_CASE),
            "already waits on vendor CASE-4711",
        ),
        (ticket(), act(ActivityType.THIRD_PARTY_ANSWERED), "waits on no third party"),
        (
            ticket(TicketStatus.WAITING_ON_THIRD_PARTY),
            act(ActivityType.WAITING_ON_CUSTOMER),
            r"waits on a third party \(vendor CASE-4711\); record 'third_party_answered' first",
        ),
    ],
)
def test_an_impossible_activity_is_refused_saying_why(
    before: TicketState | None, activity: TicketActivityData, reason: str
) -> None:
    with pytest.raises(InvalidTransitionError, match=reason):
        apply_activity(before, activity, AT)


def test_assigning_starts_the_acceptance_and_accepting_ends_it() -> None:
    assigned = apply_activity(ticket(), act(ActivityType.ASSIGNED, assignee="tom"), AT)
    assert (assigned.assignee, assigned.assigned_at, assigned.accepted_at) == ("tom", AT, None)
    later = AT + timedelta(minutes=5)
    accepted = apply_activity(assigned, act(ActivityType.ACCEPTED, assignee="tom"), later)
    assert accepted.accepted_at == later
    again = AT + timedelta(minutes=9)
    moved = apply_activity(accepted, act(ActivityType.ASSIGNED, assignee="eva"), again)
    assert (moved.assignee, moved.assigned_at, moved.accepted_at) == ("eva", again, None)


@pytest.mark.parametrize(
    ("activity", "reason"),
    [
        (act(ActivityType.ACCEPTED, assignee="eva"), "assigned to tom, not eva"),
        (
            act(ActivityType.ASSIGNED, assignee="eva", if_assignee="tom", if_unaccepted=True),
            "tom accepted the ticket meanwhile",
        ),
        (
            act(ActivityType.UNASSIGNED, if_assignee="tom", if_unaccepted=True),
            "tom accepted the ticket meanwhile",
        ),
        (act(ActivityType.UNASSIGNED, if_assignee="eva"), "assignee is tom, not eva"),
    ],
)
def test_accepted_work_is_not_taken_away(activity: TicketActivityData, reason: str) -> None:
    assigned = apply_activity(ticket(), act(ActivityType.ASSIGNED, assignee="tom"), AT)
    accepted = apply_activity(assigned, act(ActivityType.ACCEPTED), AT)
    with pytest.raises(InvalidTransitionError, match=reason):
        apply_activity(accepted, activity, AT)


def test_unassigning_gives_the_ticket_back_and_an_unowned_ticket_cannot_be_accepted() -> None:
    assigned = apply_activity(ticket(), act(ActivityType.ASSIGNED, assignee="tom"), AT)
    back = apply_activity(
        assigned, act(ActivityType.UNASSIGNED, if_assignee="tom", if_unaccepted=True), AT
    )
    assert (back.assignee, back.assigned_at, back.accepted_at) == (None, None, None)
    with pytest.raises(InvalidTransitionError, match="has no assignee"):
        apply_activity(back, act(ActivityType.ACCEPTED), AT)


LUIS, EVA = "luis@acme.example", "eva@acme.example"


def with_parties(*parties: str, status: TicketStatus = TicketStatus.OPEN) -> TicketState:
    return ticket(status).model_copy(update={"parties": parties})


@pytest.mark.parametrize(
    ("before", "activity", "parties"),
    [
        (ticket(), act(ActivityType.PARTY_ADDED, party="luis@acme.example"),
         ("luis@acme.example",)),
        (with_parties(LUIS), act(ActivityType.PARTY_ADDED, party=" Eva@Acme.example"),
         (LUIS, EVA)),
        (with_parties("luis@acme.example", "eva@acme.example"),
         act(ActivityType.PARTY_REMOVED, party="LUIS@acme.example"), ("eva@acme.example",)),
    ],
)  # fmt: skip
def test_parties_are_added_and_removed_by_address_whatever_its_case(
    before: TicketState, activity: TicketActivityData, parties: tuple[str, ...]
) -> None:
    assert apply_activity(before, activity, AT).parties == parties


@pytest.mark.parametrize(
    ("before", "activity", "reason"),
    [
        (ticket(), act(ActivityType.PARTY_ADDED), "party_added: 'party' .* is required"),
        (ticket(), act(ActivityType.PARTY_ADDED, party="luis"),
         "'party' 'luis' is not an e-mail address a person reads"),
        (ticket(), act(ActivityType.PARTY_ADDED, party="postmaster@acme.example"),
         "is not an e-mail address a person reads"),
        (ticket(), act(ActivityType.PARTY_ADDED, party="C@acme.example"),
         "c@acme.example is a party of ticket T-AAAAAAAAAAAAA already"),
        (with_parties(LUIS), act(ActivityType.PARTY_ADDED, party=LUIS), "already"),
        (with_parties(status=TicketStatus.RESOLVED),
         act(ActivityType.PARTY_ADDED, party="luis@acme.example"), "is resolved"),
        (with_parties(LUIS), act(ActivityType.PARTY_REMOVED, party=EVA),
         r"eva@acme.example is not a party of ticket T-AAAAAAAAAAAAA \(parties: luis@acme"),
        (ticket(), act(ActivityType.PARTY_REMOVED, party="c@acme.example"),
         "c@acme.example is the requester of ticket T-AAAAAAAAAAAAA, who stays"),
        (ticket(), act(ActivityType.PARTY_REMOVED), "party_removed: 'party' .* is required"),
        (with_parties("luis@acme.example", status=TicketStatus.RESOLVED),
         act(ActivityType.PARTY_REMOVED, party="luis@acme.example"), "is resolved"),
    ],
)  # fmt: skip
def test_a_party_change_that_cannot_be_is_refused_saying_why(
    before: TicketState, activity: TicketActivityData, reason: str
) -> None:
    with pytest.raises(InvalidTransitionError, match=reason):
        apply_activity(before, activity, AT)
