"""From a ticket's state record to the facts its update obligation depends on."""

from __future__ import annotations

from typing import Any

from engine.customers import CustomerDirectory
from engine.models import CustomerProfile, SlaFacts, SupportPlan, TicketState
from engine.sla.calendars import DEFAULT_ZONE
from engine.sla.timescale import REAL_TIME, TimeScale


def _profile(ticket: TicketState, directory: CustomerDirectory) -> CustomerProfile | None:
    carried: Any = getattr(ticket, "customer", None)
    if isinstance(carried, CustomerProfile):
        return carried
    customer = directory.by_id(ticket.customer_id) if ticket.customer_id else None
    return customer.profile() if customer else None


def facts_of(
    ticket: TicketState, directory: CustomerDirectory, scale: TimeScale = REAL_TIME
) -> SlaFacts:
    """The ticket's obligation facts, on the (possibly compressed) SLA timeline. An unknown
    customer is served on the business plan in DOMAIN.md's zone."""
    profile = _profile(ticket, directory)
    customer = directory.by_id(ticket.customer_id) if ticket.customer_id else None

    def at(name: str) -> Any:
        value = getattr(ticket, name, None)
        return scale.virtual(value) if value is not None else None

    return SlaFacts(
        ticket_id=ticket.ticket_id,
        priority=ticket.priority,
        status=ticket.status,
        opened_at=scale.virtual(ticket.opened_at),
        priority_since=at("priority_since"),
        status_since=at("status_since"),
        last_informed_at=at("last_informed_at"),
        informed_count=getattr(ticket, "informed_count", 0),
        plan=profile.plan if profile else SupportPlan.BUSINESS_HOURS,
        timezone=profile.timezone if profile else DEFAULT_ZONE,
        calendar=customer.calendar if customer else None,
    )
