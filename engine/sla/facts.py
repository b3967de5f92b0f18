"""From a ticket's state record to the facts its update obligation depends on."""

from __future__ import annotations

from datetime import datetime

from engine.customers import CustomerDirectory
from engine.models import SlaFacts, SupportPlan, TicketState, TicketStatus
from engine.sla.calendars import DEFAULT_ZONE


def resumed_at(
    ticket: TicketState, previous: SlaFacts | None, pause_while_waiting: bool
) -> datetime | None:
    """When the ticket's obligation restarted after a time without one, if it did.

    ``previous`` is what the SLA worker holds for an armed ticket (None: not armed). A
    ticket open again after being resolved, or after a paused wait, restarts its cadence;
    one that was armed while waiting (no pause) keeps it: the customer's reply that ended
    the wait is contact, not an update to the customer."""
    if ticket.status is not TicketStatus.OPEN:
        return previous.resumed_at if previous else None
    if previous is not None:
        was_armed_while_not_open = previous.status is not TicketStatus.OPEN and not (
            previous.status is TicketStatus.WAITING_ON_CUSTOMER and pause_while_waiting
        )
        if previous.status is TicketStatus.OPEN or was_armed_while_not_open:
            return previous.resumed_at
    if ticket.status_since is not None and ticket.status_since > ticket.opened_at:
        return ticket.status_since
    return None


def facts_of(
    ticket: TicketState,
    directory: CustomerDirectory,
    previous: SlaFacts | None = None,
    pause_while_waiting: bool = True,
) -> SlaFacts:
    """The ticket's obligation facts. The profile the ticket carries wins over the
    directory's; an unknown customer is served on the business plan in DOMAIN.md's zone."""
    customer = directory.by_id(ticket.customer_id) if ticket.customer_id else None
    profile = ticket.customer or (customer.profile() if customer else None)
    return SlaFacts(
        ticket_id=ticket.ticket_id,
        priority=ticket.priority,
        status=ticket.status,
        opened_at=ticket.opened_at,
        priority_since=ticket.priority_since,
        resumed_at=resumed_at(ticket, previous, pause_while_waiting),
        last_informed_at=ticket.last_informed_at,
        informed_count=ticket.informed_count,
        plan=profile.plan if profile else SupportPlan.BUSINESS_HOURS,
        timezone=profile.timezone if profile else DEFAULT_ZONE,
        calendar=customer.calendar if customer else None,
    )
