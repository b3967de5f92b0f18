"""The support-hours ledger, pure: a balance and one event give the next balance.

A customer's balance starts from the directory's ``support_hours``; a top-up adds hours,
a ``time_spent`` activity on one of their tickets deducts its minutes. Each event is
applied once: the balance remembers the last event ids it applied. A customer the
directory gives no hours to has no balance (their support is not metered).
"""

from __future__ import annotations

import math
from datetime import datetime

from engine.contract import (
    ActivityType,
    Channel,
    EntitlementBalanceData,
    EntitlementToppedUp,
    EntitlementUpdated,
    TicketActivity,
    TicketActivityData,
    TicketRouted,
)
from engine.contract.identity import event_id

RECENT_EVENTS_KEPT = 256


def opening_balance(customer_id: str, initial_hours: float) -> EntitlementBalanceData:
    return EntitlementBalanceData(
        customer_id=customer_id,
        initial_hours=initial_hours,
        topped_up_hours=0.0,
        spent_minutes=0,
        hours_left=initial_hours,
        last_ticket_id=None,
        recent_event_ids=(),
    )


def customer_of(event: TicketActivity | EntitlementToppedUp) -> str | None:
    """The customer an event moves the balance of, or None when it moves none."""
    match event:
        case EntitlementToppedUp(data=data):
            return data.customer_id
        case TicketActivity(data=data) if data.activity is ActivityType.TIME_SPENT:
            return data.customer_id if data.minutes else None
    return None


def apply_event(
    balance: EntitlementBalanceData, event: TicketActivity | EntitlementToppedUp
) -> EntitlementBalanceData | None:
    """The balance after ``event``, or None when it changes nothing (seen already, or not
    a top-up or time spent). Raises OverflowError when the hours no longer fit a float."""
    if event.event_id in balance.recent_event_ids or customer_of(event) != balance.customer_id:
        return None
    topped_up, spent, ticket = balance.topped_up_hours, balance.spent_minutes, None
    match event:
        case EntitlementToppedUp(data=data):
            topped_up += data.hours
        case TicketActivity(data=data):
            spent += data.minutes or 0
            ticket = data.ticket_id
    left = round(balance.initial_hours + topped_up - spent / 60, 4)
    if not (math.isfinite(topped_up) and math.isfinite(left)):
        # JSON has no infinity: the balance would be written as null and never read again.
        raise OverflowError(f"{balance.customer_id}'s balance would be {left} hours")
    recent = (*balance.recent_event_ids, event.event_id)[-RECENT_EVENTS_KEPT:]
    return balance.model_copy(
        update={
            "topped_up_hours": topped_up,
            "spent_minutes": spent,
            "hours_left": left,
            "last_ticket_id": ticket or balance.last_ticket_id,
            "recent_event_ids": recent,
        }
    )


def with_directory_hours(
    balance: EntitlementBalanceData, initial_hours: float
) -> EntitlementBalanceData:
    """The balance when the directory now gives ``initial_hours`` (it was edited)."""
    if balance.initial_hours == initial_hours:
        return balance
    left = initial_hours + balance.topped_up_hours - balance.spent_minutes / 60
    return balance.model_copy(update={"initial_hours": initial_hours, "hours_left": round(left, 4)})


def balance_record(
    balance: EntitlementBalanceData, cause_id: str, now: datetime, source: str
) -> EntitlementUpdated:
    return EntitlementUpdated(
        event_id=event_id("entitlement.updated", f"{balance.customer_id}:{cause_id}"),
        occurred_at=now,
        source=source,
        data=balance,
    )


_NOTICE = {
    "es": "Sus horas de soporte prepagadas se han agotado ({left:g} h). Su solicitud {ticket} "
    "queda registrada y la atenderemos en cuanto recargue horas.",
    "en": "Your prepaid support hours are used up ({left:g} h). Your request {ticket} is "
    "recorded and will be served as soon as hours are added.",
}


def exhausted_notice(
    routed: TicketRouted, hours_left: float, language: str, source: str
) -> TicketActivity:
    """What the customer is told when their ticket waits for hours: an update the
    notifier mails like any other (and that counts as informing them)."""
    ticket = routed.data.ticket
    text = _NOTICE.get(language, _NOTICE["en"]).format(left=hours_left, ticket=ticket.ticket_id)
    return TicketActivity(
        event_id=event_id("entitlement.notice", routed.event_id),
        occurred_at=routed.occurred_at,
        source=source,
        data=TicketActivityData(
            ticket_id=ticket.ticket_id,
            activity=ActivityType.CUSTOMER_INFORMED,
            actor=source,
            message=text,
            informed_via=Channel.EMAIL,
        ),
    )
