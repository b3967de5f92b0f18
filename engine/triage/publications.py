"""What one triage outcome puts on Kafka: the decision, the routed record on its tier
and special-route topics, the activity with the ticket after it, and the ticket's state.
Pure: the processor publishes what this returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.contract import (
    ActivityType,
    Envelope,
    IncomingTicketEvent,
    MessageEvent,
    TicketActivity,
    TicketClassified,
    TicketClassifiedData,
    TicketRouted,
    TicketRoutedData,
    TicketState,
    TicketUpdated,
    TicketUpdatedData,
)
from engine.contract.identity import event_id
from engine.contract.topics import (
    SPECIAL_ROUTE_TOPICS,
    TICKET_ACTIVITY,
    TICKET_DECISIONS,
    TIER_TOPICS,
)
from engine.triage.triage import TriageOutcome


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
    ticket = outcome.ticket
    if outcome.duplicate or outcome.refused is not None or ticket is None:
        return []
    cause_id = cause.event_id
    found: list[Publication] = []
    if outcome.classification is not None and (
        isinstance(cause, MessageEvent) or cause.data.activity is ActivityType.REPRIORITIZED
    ):
        classified = TicketClassified(
            event_id=event_id("ticket.classified", cause_id),
            occurred_at=now,
            source=source,
            data=TicketClassifiedData(
                ticket_id=ticket.ticket_id,
                cause_event_id=cause_id,
                classification=outcome.classification,
            ),
        )
        found.append(Publication(TICKET_DECISIONS, ticket.ticket_id, classified))
    if outcome.routed and outcome.classification is not None and outcome.route is not None:
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
    if outcome.activity is not None:
        # An agent's activity keeps its own id; a reply's derives from the mail.
        activity_id = (
            cause_id if isinstance(cause, TicketActivity) else event_id("ticket.activity", cause_id)
        )
        activity = TicketActivity(
            event_id=activity_id,
            occurred_at=cause.occurred_at,
            source=cause.source if isinstance(cause, TicketActivity) else source,
            data=outcome.activity,
        )
        found.append(Publication(TICKET_ACTIVITY, ticket.ticket_id, activity))
    return found


def state_record(ticket: TicketState, cause_id: str, now: datetime, source: str) -> TicketUpdated:
    return TicketUpdated(
        event_id=event_id("ticket.updated", cause_id),
        occurred_at=now,
        source=source,
        data=TicketUpdatedData(ticket=ticket),
    )
