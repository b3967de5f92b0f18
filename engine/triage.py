"""triage(previous, event, ruleset, now): what one incoming event does to its ticket.

Pure: the processor feeds it the ticket's stored state and publishes what it returns.
A follow-up message on an open ticket may raise its priority but never lowers it
(a calmer follow-up does not make an outage less urgent); the first real category stays,
and tags and special routes only accumulate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.customers import EMPTY_DIRECTORY, CustomerDirectory
from engine.identity import event_id
from engine.models import (
    Channel,
    ChatMessageReceived,
    Classification,
    CustomerProfile,
    EmailReceived,
    Envelope,
    IncomingTicketEvent,
    PhoneCallLogged,
    RouteDecision,
    TicketClassified,
    TicketClassifiedData,
    TicketMessage,
    TicketRouted,
    TicketRoutedData,
    TicketState,
    TicketStatus,
    TicketUpdated,
    TicketUpdatedData,
)
from engine.rules.classify import classify
from engine.rules.route import route
from engine.rules.ruleset import RuleSet
from engine.topics import SPECIAL_ROUTE_TOPICS, TICKET_DECISIONS, TIER_TOPICS

RECENT_EVENTS_KEPT = 64


@dataclass(frozen=True)
class TriageOutcome:
    ticket: TicketState
    classification: Classification | None
    route: RouteDecision | None
    duplicate: bool
    routed: bool
    """True when the ticket is new, or its tier, priority or special routes changed."""


def message_of(event: IncomingTicketEvent, customers: CustomerDirectory) -> TicketMessage:
    match event:
        case EmailReceived(data=data):
            return TicketMessage(
                channel=Channel.EMAIL,
                subject=data.subject,
                body=data.new_text or data.text,
                sender=data.from_address,
                customer=customers.profile_of(data.from_address),
            )
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


def suppression_reason(event: IncomingTicketEvent) -> str | None:
    """Why this event must not open, update or answer a ticket (mail loops), or None."""
    match event:
        case EmailReceived(data=data):
            return data.automated_reason
        case ChatMessageReceived() | PhoneCallLogged():
            return None


def ticket_id_of(event: IncomingTicketEvent) -> str:
    return event.data.ticket_id


def _effective(
    classification: Classification, previous: TicketState | None, ruleset: RuleSet
) -> Classification:
    if previous is None:
        return classification
    priority, category = classification.priority, classification.category
    notes = list(classification.explanation)
    if previous.priority.severity > priority.severity:
        priority = previous.priority
        notes.append(f"priority kept at {priority}: an earlier message set it, never lowered")
    if previous.category != ruleset.defaults.category and previous.category != category:
        category = previous.category
        notes.append(f"category kept at {category}: set by the ticket's first messages")
    tags = (*previous.tags, *(tag for tag in classification.tags if tag not in previous.tags))
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
) -> TriageOutcome:
    if previous is not None and event.event_id in previous.recent_event_ids:
        return TriageOutcome(previous, None, None, duplicate=True, routed=False)

    message = message_of(event, customers)
    classification = _effective(classify(message, ruleset), previous, ruleset)
    decision = route(classification, message, ruleset.routes)
    recent = (*(previous.recent_event_ids if previous else ()), event.event_id)
    ticket = TicketState(
        ticket_id=ticket_id_of(event),
        status=previous.status if previous else TicketStatus.OPEN,
        channel=previous.channel if previous else message.channel,
        subject=previous.subject if previous else message.subject,
        requester=previous.requester if previous else message.sender,
        customer_id=message.customer.customer_id if message.customer else None,
        opened_at=previous.opened_at if previous else event.occurred_at,
        updated_at=now,
        priority=classification.priority,
        category=classification.category,
        tier=decision.tier,
        special_routes=decision.special_routes,
        tags=classification.tags,
        skills=classification.skills,
        event_count=(previous.event_count if previous else 0) + 1,
        recent_event_ids=recent[-RECENT_EVENTS_KEPT:],
        ruleset_version=ruleset.fingerprint,
    )
    routed = previous is None or (
        (previous.tier, previous.priority, previous.special_routes)
        != (ticket.tier, ticket.priority, ticket.special_routes)
    )
    return TriageOutcome(ticket, classification, decision, duplicate=False, routed=routed)


@dataclass(frozen=True)
class Publication:
    topic: str
    key: str
    record: Envelope


def publications(
    outcome: TriageOutcome, cause: IncomingTicketEvent, now: datetime, source: str
) -> list[Publication]:
    """The records one triage outcome puts on Kafka. Their ids derive from the cause, so
    reprocessing the same event yields the same ids (consumers can deduplicate)."""
    if outcome.duplicate or outcome.classification is None or outcome.route is None:
        return []
    ticket = outcome.ticket
    cause_id = cause.event_id
    found: list[Publication] = [
        Publication(
            TICKET_DECISIONS,
            ticket.ticket_id,
            TicketClassified(
                event_id=event_id("ticket.classified", cause_id),
                occurred_at=now,
                source=source,
                data=TicketClassifiedData(
                    ticket_id=ticket.ticket_id,
                    cause_event_id=cause_id,
                    classification=outcome.classification,
                ),
            ),
        )
    ]
    if outcome.routed:
        routed = TicketRouted(
            event_id=event_id("ticket.routed", cause_id),
            occurred_at=now,
            source=source,
            data=TicketRoutedData(
                ticket_id=ticket.ticket_id,
                cause_event_id=cause_id,
                ticket=ticket,
                classification=outcome.classification,
                route=outcome.route,
            ),
        )
        found.append(Publication(TIER_TOPICS[outcome.route.tier], ticket.ticket_id, routed))
        found.extend(
            Publication(SPECIAL_ROUTE_TOPICS[special], ticket.ticket_id, routed)
            for special in outcome.route.special_routes
        )
    return found


def state_record(ticket: TicketState, cause_id: str, now: datetime, source: str) -> TicketUpdated:
    return TicketUpdated(
        event_id=event_id("ticket.updated", cause_id),
        occurred_at=now,
        source=source,
        data=TicketUpdatedData(ticket=ticket),
    )
