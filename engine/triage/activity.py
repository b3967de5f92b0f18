"""apply_activity(ticket, activity, at): what one action of the desk or the customer does to
a ticket, or why it is refused.

Pure. The processor applies activity in the order of the ticket's events; the HTTP API
calls the same function on its view of the state to refuse an impossible action at once.
"""

from __future__ import annotations

from datetime import datetime

from engine.contract import (
    ActivityType,
    TicketActivityData,
    TicketState,
    TicketStatus,
    Tier,
)
from engine.contract.addresses import may_receive_mail, normal_address
from engine.errors import EngineError

TIER_ORDER: tuple[Tier, ...] = (Tier.L1, Tier.L2, Tier.L3)


class InvalidTransitionError(EngineError):
    """An activity that cannot apply to the ticket as it stands; the reason says why."""


def tier_rank(tier: Tier) -> int:
    return TIER_ORDER.index(tier)


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise InvalidTransitionError(reason)


def _refuse_when_resolved(ticket: TicketState, activity: ActivityType) -> None:
    _require(
        ticket.status is not TicketStatus.RESOLVED,
        f"ticket {ticket.ticket_id} is resolved: reopen it before '{activity}'",
    )


def _with_status(ticket: TicketState, status: TicketStatus, at: datetime) -> dict[str, object]:
    """The changes of entering ``status``; what the ticket waited on ends with its wait."""
    if ticket.status is status:
        return {}
    return {"status": status, "status_since": at, "waiting_on": None}


def _require_expected_assignee(ticket: TicketState, activity: TicketActivityData) -> None:
    if activity.if_assignee is not None:
        _require(
            (ticket.assignee or "") == activity.if_assignee,
            f"{activity.activity}: the ticket's assignee is {ticket.assignee or 'nobody'}, not "
            f"{activity.if_assignee or 'nobody'} as expected",
        )


def _require_unaccepted(ticket: TicketState, activity: TicketActivityData) -> None:
    if activity.if_unaccepted:
        _require(
            ticket.accepted_at is None,
            f"{activity.activity}: {ticket.assignee} accepted the ticket meanwhile",
        )


def _party_added(ticket: TicketState, party: str | None) -> tuple[str, ...]:
    _require(bool(party), "party_added: 'party' (an e-mail address) is required")
    address = normal_address(party or "")
    _require(
        may_receive_mail(address),
        f"party_added: 'party' {party!r} is not an e-mail address a person reads",
    )
    _require(
        address != normal_address(ticket.requester) and address not in ticket.parties,
        f"party_added: {address} is a party of ticket {ticket.ticket_id} already",
    )
    return (*ticket.parties, address)


def _party_removed(ticket: TicketState, party: str | None) -> tuple[str, ...]:
    _require(bool(party), "party_removed: 'party' (an e-mail address) is required")
    address = normal_address(party or "")
    _require(
        address != normal_address(ticket.requester),
        f"party_removed: {address} is the requester of ticket {ticket.ticket_id}, who stays",
    )
    _require(
        address in ticket.parties,
        f"party_removed: {address} is not a party of ticket {ticket.ticket_id} "
        f"(parties: {', '.join(ticket.parties) or 'none'})",
    )
    return tuple(kept for kept in ticket.parties if kept != address)


def apply_activity(
    ticket: TicketState | None, activity: TicketActivityData, at: datetime
) -> TicketState:
    """The ticket after ``activity``; raises InvalidTransitionError naming what is wrong."""
    kind = activity.activity
    _require(ticket is not None, f"no ticket {activity.ticket_id}")
    assert ticket is not None
    changes: dict[str, object] = {"updated_at": at}
    match kind:
        case ActivityType.ASSIGNED:
            _refuse_when_resolved(ticket, kind)
            _require(bool(activity.assignee), "assigned: 'assignee' is required")
            _require_expected_assignee(ticket, activity)
            _require_unaccepted(ticket, activity)
            if activity.assignee != ticket.assignee:
                changes.update(assignee=activity.assignee, assigned_at=at, accepted_at=None)
        case ActivityType.ACCEPTED:
            _refuse_when_resolved(ticket, kind)
            _require(ticket.assignee is not None, "accepted: the ticket has no assignee")
            _require(
                activity.assignee in (None, ticket.assignee),
                f"accepted: the ticket is assigned to {ticket.assignee}, not {activity.assignee}",
            )
            _require(ticket.accepted_at is None, f"accepted: {ticket.assignee} accepted it already")
            changes["accepted_at"] = at
        case ActivityType.UNASSIGNED:
            _refuse_when_resolved(ticket, kind)
            _require(ticket.assignee is not None, "unassigned: the ticket has no assignee")
            _require_expected_assignee(ticket, activity)
            _require_unaccepted(ticket, activity)
            changes.update(assignee=None, assigned_at=None, accepted_at=None)
        case ActivityType.CUSTOMER_INFORMED:
            _refuse_when_resolved(ticket, kind)
            changes["informed_count"] = ticket.informed_count + 1
            changes["last_informed_at"] = at
        case ActivityType.REPRIORITIZED:
            _refuse_when_resolved(ticket, kind)
            _require(activity.priority is not None, "reprioritized: 'priority' is required")
            _require(bool(activity.note), "reprioritized: 'note' (the reason) is required")
            _require(
                activity.priority is not ticket.priority,
                f"reprioritized: the ticket is {ticket.priority} already",
            )
            changes["priority"] = activity.priority
            changes["priority_since"] = at
        case ActivityType.NOTE:
            _require(bool(activity.note), "note: 'note' is required")
        case ActivityType.ESCALATED:
            _refuse_when_resolved(ticket, kind)
            _require(activity.tier is not None, "escalated: 'tier' is required")
            assert activity.tier is not None
            _require(
                tier_rank(activity.tier) > tier_rank(ticket.tier),
                f"escalated: the ticket is at {ticket.tier}; escalation goes to a higher tier",
            )
            changes["tier"] = activity.tier
        case ActivityType.WAITING_ON_CUSTOMER:
            _refuse_when_resolved(ticket, kind)
            _require(
                ticket.status is not TicketStatus.WAITING_ON_CUSTOMER,
                "waiting_on_customer: the ticket already waits on the customer",
            )
            _require(
                ticket.status is not TicketStatus.WAITING_ON_THIRD_PARTY,
                f"waiting_on_customer: the ticket waits on a third party ({ticket.waiting_on}); "
                "record 'third_party_answered' first",
            )
            changes.update(_with_status(ticket, TicketStatus.WAITING_ON_CUSTOMER, at))
        case ActivityType.WAITING_ON_THIRD_PARTY:
            _refuse_when_resolved(ticket, kind)
            _require(
                activity.waiting_on is not None,
                "waiting_on_third_party: 'waiting_on' (its kind and reference) is required",
            )
            _require(
                activity.waiting_on != ticket.waiting_on,
                f"waiting_on_third_party: the ticket already waits on {activity.waiting_on}",
            )
            changes.update(_with_status(ticket, TicketStatus.WAITING_ON_THIRD_PARTY, at))
            changes["waiting_on"] = activity.waiting_on
        case ActivityType.THIRD_PARTY_ANSWERED:
            _require(
                ticket.status is TicketStatus.WAITING_ON_THIRD_PARTY,
                f"third_party_answered: ticket {ticket.ticket_id} waits on no third party",
            )
            changes.update(_with_status(ticket, TicketStatus.OPEN, at))
        case ActivityType.TIME_SPENT:
            _require(bool(activity.minutes), "time_spent: 'minutes' must be more than 0")
            changes["time_spent_minutes"] = ticket.time_spent_minutes + (activity.minutes or 0)
        case ActivityType.RESOLVED:
            _require(
                ticket.status is not TicketStatus.RESOLVED,
                f"ticket {ticket.ticket_id} is already resolved",
            )
            changes.update(_with_status(ticket, TicketStatus.RESOLVED, at))
            changes["resolved_at"] = at
        case ActivityType.REOPENED:
            _require(
                ticket.status is TicketStatus.RESOLVED,
                f"reopened: ticket {ticket.ticket_id} is not resolved",
            )
            changes.update(_with_status(ticket, TicketStatus.OPEN, at))
            changes["resolved_at"] = None
        case ActivityType.PARTY_ADDED:
            _refuse_when_resolved(ticket, kind)
            changes["parties"] = _party_added(ticket, activity.party)
        case ActivityType.PARTY_REMOVED:
            _refuse_when_resolved(ticket, kind)
            changes["parties"] = _party_removed(ticket, activity.party)
        case ActivityType.CUSTOMER_REPLIED:
            # The customer wrote: contact, not the desk's update. An answer to the desk's
            # question ends the wait; a reply to a resolved ticket reopens it. A wait on a
            # third party goes on: the customer cannot answer for the vendor.
            changes["last_customer_contact_at"] = at
            if ticket.status in (TicketStatus.WAITING_ON_CUSTOMER, TicketStatus.RESOLVED):
                changes.update(_with_status(ticket, TicketStatus.OPEN, at))
                changes["resolved_at"] = None
    return ticket.model_copy(update=changes)
