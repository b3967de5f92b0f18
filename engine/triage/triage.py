"""triage(previous, event, ruleset, now): what one incoming event does to its ticket.

Pure: the processor feeds it the ticket's stored state and publishes what it returns.
A message is classified and routed. A follow-up message on an open ticket may raise its
priority and tier but never lowers them (a calmer follow-up does not make an outage less
urgent, nor undo an escalation); the first real category stays, and tags and special
routes only accumulate. A follow-up the customer wrote is also recorded as a
``customer_replied`` activity. A mail naming a ticket its sender may not join (decision
64, ``joining``) is not applied: it is put back under a new ticket linked to that one. An
agent's activity is applied by ``apply_activity``, or refused with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from engine.contract import (
    ActivityType,
    Channel,
    ChatMessageReceived,
    Classification,
    CustomerProfile,
    EmailReceived,
    EmailReceivedData,
    IncomingTicketEvent,
    MessageEvent,
    PhoneCallLogged,
    RouteDecision,
    SenderCheck,
    TicketActivity,
    TicketActivityData,
    TicketLink,
    TicketMessage,
    TicketState,
    TicketStatus,
    TrapReceived,
)
from engine.contract.addresses import mailable_addresses
from engine.contract.customers import EMPTY_DIRECTORY, CustomerDirectory
from engine.entitlements.routing import entitlement_check
from engine.rules.classify import classify
from engine.rules.route import route
from engine.rules.ruleset import RuleSet
from engine.triage import alarms
from engine.triage.activity import InvalidTransitionError, apply_activity, tier_rank
from engine.triage.joining import OpensLinked, mail_join_decision, opened_beside

RECENT_EVENTS_KEPT = 64
# Channels where a follow-up is the customer writing (a repeated trap is not).
CUSTOMER_CHANNELS = frozenset({Channel.EMAIL, Channel.CHAT, Channel.PHONE})


@dataclass(frozen=True)
class TriageOutcome:
    ticket: TicketState | None
    """The ticket after the event; None when a refused activity names no known ticket."""
    classification: Classification | None
    route: RouteDecision | None
    duplicate: bool
    routed: bool
    """True when the ticket is new, or its tier, priority or special routes changed."""
    activity: TicketActivityData | None = None
    """Activity to publish on the activity feed: an agent's, or the customer's reply."""
    refused: str | None = None
    """Why an activity was not applied."""
    redirected: EmailReceived | None = None
    """A mail whose sender may not join the ticket it named, put back under the new
    ticket it opens (linked to that one): to be sent to the ticket events topic."""


def message_of(event: MessageEvent, customers: CustomerDirectory) -> TicketMessage:
    match event:
        case EmailReceived(data=data):
            return TicketMessage(
                channel=Channel.EMAIL,
                subject=data.subject,
                body=data.new_text or data.text,
                sender=data.from_address,
                customer=_customer_of(data, customers),
            )
        case TrapReceived(data=data):
            return alarms.trap_message(data, customers)
        case ChatMessageReceived(data=data):
            return TicketMessage(
                channel=Channel.CHAT,
                body=data.text,
                sender=data.sender,
                customer=_customer(customers, data.customer_id, data.sender),
            )
        case PhoneCallLogged(data=data):
            return TicketMessage(
                channel=Channel.PHONE,
                subject=data.subject,
                body=data.summary,
                sender=data.caller,
                customer=_customer(customers, data.customer_id, data.caller),
                suggested_priority=data.suggested_priority,
            )


def _customer(
    customers: CustomerDirectory, customer_id: str | None, contact: str
) -> CustomerProfile | None:
    """The customer named by id (kept even when the directory does not know it), else the
    one the contact's address belongs to."""
    if customer_id is not None:
        return customers.profile_by_id(customer_id) or CustomerProfile(customer_id=customer_id)
    return customers.profile_of(contact)


def _customer_of(data: EmailReceivedData, customers: CustomerDirectory) -> CustomerProfile | None:
    """The sender's customer; for a forward from someone unknown, the original sender's."""
    found = customers.profile_of(data.from_address)
    if found is None and data.forwarded is not None:
        found = customers.profile_of(data.forwarded.from_address)
    return found


def opening_parties(event: MessageEvent) -> tuple[str, ...]:
    """Who besides the requester a new ticket tells: the people in Cc of the opening mail,
    never the engine's own addresses (the mail's recipients), the requester or a mail
    system."""
    match event:
        case EmailReceived(data=data):
            return mailable_addresses(data.cc, excluding=(*data.rcpt_to, data.from_address))
        case TrapReceived() | ChatMessageReceived() | PhoneCallLogged():
            return ()


def suppression_reason(event: IncomingTicketEvent) -> str | None:
    """Why this event must not open, update or answer a ticket (mail loops), or None."""
    match event:
        case EmailReceived(data=data):
            return data.automated_reason
        case TrapReceived() | TicketActivity() | ChatMessageReceived() | PhoneCallLogged():
            return None


def linked_to(event: MessageEvent) -> TicketLink | None:
    """The ticket this message named but could not join (the processor put it back)."""
    return event.data.linked_to if isinstance(event, EmailReceived) else None


def failed_checks_of(event: MessageEvent) -> tuple[SenderCheck, ...]:
    """The sender checks a mail failed at the relay (other channels have none)."""
    return event.data.failed_checks if isinstance(event, EmailReceived) else ()


def ticket_id_of(event: IncomingTicketEvent) -> str:
    return event.data.ticket_id


def _effective(
    classification: Classification, previous: TicketState | None, ruleset: RuleSet
) -> Classification:
    if previous is None:
        return classification
    priority, category = classification.priority, classification.category
    notes = list(classification.explanation)
    if classification.priority_by_default and previous.priority is not priority:
        priority = previous.priority
        notes.append(f"priority kept at {priority}: no rule set one for this follow-up")
    elif previous.priority.severity > priority.severity:
        priority = previous.priority
        notes.append(f"priority kept at {priority}: an earlier message set it, never lowered")
    if previous.category != ruleset.defaults.category and previous.category != category:
        category = previous.category
        notes.append(f"category kept at {category}: set by the ticket's first messages")
    tags = (*previous.tags, *(tag for tag in classification.tags if tag not in previous.tags))
    if previous.status is TicketStatus.RESOLVED:
        notes.append("the customer wrote on a resolved ticket: reopened")
    special = (
        *previous.special_routes,
        *(route for route in classification.special_routes if route not in previous.special_routes),
    )
    return classification.model_copy(
        update={
            "priority": priority,
            "category": category,
            "tags": tags,
            "special_routes": special,
            "explanation": tuple(notes),
        }
    )


def triage(
    previous: TicketState | None,
    event: IncomingTicketEvent,
    ruleset: RuleSet,
    now: datetime,
    customers: CustomerDirectory = EMPTY_DIRECTORY,
    hours_left: Mapping[str, float] | None = None,
) -> TriageOutcome:
    if previous is not None and event.event_id in previous.recent_event_ids:
        return TriageOutcome(previous, None, None, duplicate=True, routed=False)
    if isinstance(event, TicketActivity):
        return _apply_activity(previous, event, now, ruleset)
    if isinstance(event, EmailReceived):
        joining = mail_join_decision(event, previous, customers)
        if isinstance(joining, OpensLinked):
            redirected = opened_beside(event, joining)
            return TriageOutcome(previous, None, None, False, False, redirected=redirected)
    return _triage_message(previous, event, ruleset, now, customers, hours_left or {})


def _recorded(previous: TicketState | None, event_id: str) -> dict[str, object]:
    recent = (*(previous.recent_event_ids if previous else ()), event_id)
    return {
        "event_count": (previous.event_count if previous else 0) + 1,
        "recent_event_ids": recent[-RECENT_EVENTS_KEPT:],
    }


def _kept_tier(decision: RouteDecision, previous: TicketState | None) -> RouteDecision:
    if previous is None or tier_rank(previous.tier) <= tier_rank(decision.tier):
        return decision
    return decision.model_copy(update={"tier": previous.tier})


def _triage_message(
    previous: TicketState | None,
    event: MessageEvent,
    ruleset: RuleSet,
    now: datetime,
    customers: CustomerDirectory,
    hours_left: Mapping[str, float],
) -> TriageOutcome:
    message = message_of(event, customers)
    classification = _effective(classify(message, ruleset), previous, ruleset)
    link = linked_to(event)
    if previous is None and link is not None:
        classification = classification.model_copy(
            update={"explanation": (*classification.explanation, link.reason)}
        )
    ruled = route(classification, message, ruleset.routes)
    decision = _kept_tier(ruled, previous)
    if previous is None:
        decision, classification = entitlement_check(
            decision, classification, message.customer, hours_left
        )
    if decision.tier is not ruled.tier:
        note = f"tier kept at {decision.tier}: set earlier, never lowered by a follow-up"
        classification = classification.model_copy(
            update={"explanation": (*classification.explanation, note)}
        )
    priority_since = event.occurred_at
    if previous is not None and previous.priority is classification.priority:
        priority_since = previous.priority_since or previous.opened_at
    alarm = alarms.alarm_after(previous, event)
    # A follow-up from someone the directory does not know (a colleague in copy) does not
    # make the ticket's customer unknown.
    customer = message.customer or (previous.customer if previous else None)
    ticket = TicketState(
        ticket_id=ticket_id_of(event),
        status=previous.status if previous else TicketStatus.OPEN,
        channel=previous.channel if previous else message.channel,
        subject=previous.subject if previous else message.subject,
        requester=previous.requester if previous else message.sender,
        customer_id=customer.customer_id if customer else None,
        customer=customer,
        parties=previous.parties if previous else opening_parties(event),
        assignee=previous.assignee if previous else None,
        priority_since=priority_since,
        status_since=previous.status_since if previous else event.occurred_at,
        waiting_on=previous.waiting_on if previous else None,
        informed_count=previous.informed_count if previous else 0,
        last_informed_at=previous.last_informed_at if previous else None,
        last_customer_contact_at=previous.last_customer_contact_at if previous else None,
        resolved_at=previous.resolved_at if previous else None,
        time_spent_minutes=previous.time_spent_minutes if previous else 0,
        opened_at=previous.opened_at if previous else event.occurred_at,
        updated_at=now,
        priority=classification.priority,
        category=classification.category,
        tier=decision.tier,
        special_routes=decision.special_routes,
        tags=classification.tags,
        skills=classification.skills,
        ruleset_version=ruleset.fingerprint,
        alarm=alarm.state if alarm is not None else None,
        linked_to=previous.linked_to if previous else link,
        requester_failed_checks=(
            previous.requester_failed_checks if previous else failed_checks_of(event)
        ),
        **_recorded(previous, event.event_id),  # type: ignore[arg-type]
    )
    reply = None
    if previous is not None and message.channel in CUSTOMER_CHANNELS:
        reply = TicketActivityData(
            ticket_id=ticket.ticket_id,
            activity=ActivityType.CUSTOMER_REPLIED,
            actor=message.sender or "customer",
            note=message.subject or None,
        )
        ticket = apply_activity(ticket, reply, event.occurred_at).model_copy(
            update={"updated_at": now}
        )
        reply = _published(reply, ticket)
    elif alarm is not None and alarm.reopened and ticket.status is TicketStatus.RESOLVED:
        reply = TicketActivityData(
            ticket_id=ticket.ticket_id,
            activity=ActivityType.REOPENED,
            actor=message.sender,
            note=f"alarm raised again after it cleared: {message.subject}",
        )
        ticket = apply_activity(ticket, reply, event.occurred_at).model_copy(
            update={"updated_at": now}
        )
        reply = _published(reply, ticket)
    routed = previous is None or (
        (previous.tier, previous.priority, previous.special_routes)
        != (ticket.tier, ticket.priority, ticket.special_routes)
    )
    return TriageOutcome(
        ticket, classification, decision, duplicate=False, routed=routed, activity=reply
    )


def _published(activity: TicketActivityData, ticket: TicketState) -> TicketActivityData:
    return activity.model_copy(update={"customer_id": ticket.customer_id, "ticket": ticket})


def _apply_activity(
    previous: TicketState | None, event: TicketActivity, now: datetime, ruleset: RuleSet
) -> TriageOutcome:
    activity = event.data
    try:
        applied = apply_activity(previous, activity, now)
    except InvalidTransitionError as refusal:
        return TriageOutcome(previous, None, None, False, False, refused=str(refusal))
    assert previous is not None  # apply_activity refuses an activity without its ticket
    ticket = applied.model_copy(update=_recorded(previous, event.event_id))
    by = f" by {activity.actor}" + (f": {activity.note}" if activity.note else "")
    if activity.activity is ActivityType.ESCALATED:
        reason = f"escalated to {ticket.tier}{by}"
        path: tuple[str, ...] = ("escalated",)
    elif activity.activity is ActivityType.REPRIORITIZED:
        change = f"reprioritized {previous.priority} -> {ticket.priority}{by}"
        ticket, reason, path = _rerouted(ticket, previous, ruleset, change)
    else:
        return TriageOutcome(ticket, None, None, False, False, _published(activity, ticket))
    classification = _as_decided(ticket).model_copy(update={"explanation": (reason,)})
    decision = RouteDecision(
        tier=ticket.tier,
        special_routes=(),
        route_path=path,
        ruleset_version=ticket.ruleset_version,
    )
    return TriageOutcome(
        ticket, classification, decision, False, True, _published(activity, ticket)
    )


def _as_decided(ticket: TicketState) -> Classification:
    """The ticket's classification as it stands (a person's activity changed it)."""
    return Classification(
        priority=ticket.priority,
        category=ticket.category,
        tags=ticket.tags,
        skills=ticket.skills,
        special_routes=ticket.special_routes,
        matches=(),
        explanation=(),
        ruleset_version=ticket.ruleset_version,
    )


def _rerouted(
    ticket: TicketState, previous: TicketState, ruleset: RuleSet, reason: str
) -> tuple[TicketState, str, tuple[str, ...]]:
    """A person's priority sent through the route tree: a higher tier is taken, a lower
    one is not (moving a ticket down is a person's decision of its own)."""
    message = TicketMessage(
        channel=ticket.channel, subject=ticket.subject, customer=ticket.customer
    )
    routed = route(_as_decided(ticket), message, ruleset.routes)
    path = ("reprioritized", *routed.route_path)
    if tier_rank(routed.tier) > tier_rank(previous.tier):
        return ticket.model_copy(update={"tier": routed.tier}), f"{reason}; now {routed.tier}", path
    return ticket, f"{reason}; stays at {previous.tier}", path
