"""From a ticket's state record to the facts its update obligation depends on."""

from __future__ import annotations

from datetime import datetime

from engine.contract import SlaFacts, SupportPlan, TicketState, TicketStatus
from engine.contract.customers import CustomerDirectory
from engine.sla.calendars import DEFAULT_ZONE
from engine.sla.obligations import ALWAYS_OWES_UPDATES


def restarts(
    ticket: TicketState, previous: SlaFacts | None, pause_while_waiting: bool
) -> tuple[datetime | None, int]:
    """When the ticket's obligation last restarted after a time without one (if it did),
    and how many times it was re-armed without an update (restarts, priority changes).

    ``previous`` is what the SLA worker holds for the ticket. A ticket whose obligation
    comes back after a time without one (open again after its resolution; open again, or
    waiting on a third party, after a paused wait on the customer) restarts its cadence;
    one whose obligation ran through a wait (on the customer without a pause, on a third
    party always) keeps it: what ended the wait is not an update to the customer."""
    if previous is None:
        reopened = ticket.status is TicketStatus.OPEN and (
            ticket.status_since is not None and ticket.status_since > ticket.opened_at
        )
        return (ticket.status_since if reopened else None), 0
    resumed, rearmings = previous.resumed_at, previous.rearmings
    if ticket.priority != previous.priority:
        rearmings += 1
    was_disarmed = previous.status is TicketStatus.RESOLVED or (
        previous.status is TicketStatus.WAITING_ON_CUSTOMER and pause_while_waiting
    )
    if ticket.status in ALWAYS_OWES_UPDATES and was_disarmed:
        resumed, rearmings = ticket.status_since, rearmings + 1
    return resumed, rearmings


def counted_rearmings(ticket: TicketState, folded: int, first_seen: bool) -> int:
    """The rearmings that number the obligation ``n = informed_count + rearmings + 1``.

    Every arming after the opening is a ticket event (an update given, a re-prioritising
    message, a reopening), so ``n`` never exceeds the ticket's ``event_count`` at the state
    that armed it: the fold's count is capped there. A ticket the worker holds no row for
    (new, or reopened after its row was deleted at resolution) starts at that ceiling, so
    a reopened ticket's ``n`` is above every ``n`` of its earlier life (the reopening is
    itself an event) and no key ``ticket:UPD-Px:n`` comes back."""
    ceiling = max(0, ticket.event_count - 1 - ticket.informed_count)
    return ceiling if first_seen else min(folded, ceiling)


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
    resumed_at, folded = restarts(ticket, previous, pause_while_waiting)
    rearmings = counted_rearmings(ticket, folded, first_seen=previous is None)
    return SlaFacts(
        ticket_id=ticket.ticket_id,
        priority=ticket.priority,
        status=ticket.status,
        opened_at=ticket.opened_at,
        priority_since=ticket.priority_since,
        resumed_at=resumed_at,
        last_informed_at=ticket.last_informed_at,
        informed_count=ticket.informed_count,
        rearmings=rearmings,
        plan=profile.plan if profile else SupportPlan.BUSINESS_HOURS,
        timezone=profile.timezone if profile else DEFAULT_ZONE,
        calendar=customer.calendar if customer else None,
    )
