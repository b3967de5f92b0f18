"""Writes: chat messages, phone calls and ticket activity become events on
``tickets.events.v1``, answered 202 only once Kafka acknowledged them.

Event ids derive from the client's own ids (message, call, activity), so a client that
retries after a timeout or a 503 never makes a second ticket or a second action.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import Counter, Histogram
from pydantic import TypeAdapter, ValidationError

from engine import metrics
from engine.api.context import (
    ApiContext,
    ApiError,
    context_of,
    integration_of,
    invalid,
    model_response,
    parse_body,
    parse_parameter,
    raise_unknown,
    requires,
    retry_later,
)
from engine.api.contract import (
    Accepted,
    ActivityIn,
    ChatMessageIn,
    ConversationId,
    PhoneCallIn,
    Problem,
    TicketId,
)
from engine.api.security import CustomerClaimError, Integration, Scope, message_customer
from engine.contract import (
    ChatMessageReceived,
    ChatMessageReceivedData,
    Envelope,
    PhoneCallLogged,
    PhoneCallLoggedData,
    TicketActivity,
    TicketActivityData,
    to_json,
)
from engine.contract.identity import chat_ticket_id, event_id, phone_ticket_id
from engine.contract.topics import TICKET_EVENTS
from engine.errors import PublishError
from engine.metrics import IngestOutcome, IngestReason, IngestSource
from engine.triage.activity import InvalidTransitionError, apply_activity

CONVERSATION_ID: TypeAdapter[str] = TypeAdapter(ConversationId)
TICKET_ID: TypeAdapter[str] = TypeAdapter(TicketId)


@dataclass(frozen=True)
class _SourceMetrics:
    """The metric children one source updates per event, looked up once."""

    accepted: Counter
    rejected: Counter
    ack_seconds: Histogram


@functools.cache
def _metrics_of(source: IngestSource) -> _SourceMetrics:
    return _SourceMetrics(
        accepted=metrics.EVENTS_INGESTED.labels(source, IngestOutcome.ACCEPTED, IngestReason.NONE),
        rejected=metrics.EVENTS_INGESTED.labels(
            source, IngestOutcome.REJECTED, IngestReason.KAFKA_UNAVAILABLE
        ),
        ack_seconds=metrics.INGEST_ACK_SECONDS.labels(source),
    )


async def publish(
    context: ApiContext, ticket_id: str, record: Envelope, source: IngestSource
) -> Accepted:
    """Put the event on Kafka, keyed by its ticket; raises a 503 ApiError when Kafka does
    not acknowledge it in time."""
    counted = _metrics_of(source)
    received = context.clock.now()
    try:
        await context.publisher.publish(TICKET_EVENTS, ticket_id.encode(), to_json(record))
    except PublishError:
        counted.rejected.inc()
        raise retry_later("the ticket queue is unavailable; retry later") from None
    elapsed = (context.clock.now() - received).total_seconds()
    counted.ack_seconds.observe(max(0.0, elapsed))
    counted.accepted.inc()
    return Accepted(ticket_id=ticket_id, event_id=record.event_id)


def customer_for(integration: Integration, claimed: str | None, desk_may_name: bool) -> str | None:
    """The message's customer by its token's integration, or 422 naming ``customer_id``."""
    try:
        return message_customer(integration, claimed, desk_may_name)
    except CustomerClaimError as refusal:
        problem = Problem(path=refusal.field, message=str(refusal))
        error = f"the request is not valid: {refusal.field}: {refusal}"
        raise ApiError(422, error, (problem,)) from None


def chat_event(
    context: ApiContext,
    conversation_id: str,
    ticket_id: str,
    message: ChatMessageIn,
    customer_id: str | None,
) -> Envelope:
    return ChatMessageReceived(
        event_id=event_id("chat", f"{conversation_id}:{message.message_id}"),
        occurred_at=context.clock.now(),
        source=context.source,
        data=ChatMessageReceivedData(
            ticket_id=ticket_id,
            conversation_id=conversation_id,
            message_id=message.message_id,
            sender=message.sender,
            customer_id=customer_id,
            text=message.text,
        ),
    )


async def accept_chat_message(
    context: ApiContext, integration: Integration, conversation_id: str, message: ChatMessageIn
) -> Accepted:
    customer_id = customer_for(integration, message.customer_id, desk_may_name=False)
    ticket_id = chat_ticket_id(conversation_id)
    record = chat_event(context, conversation_id, ticket_id, message, customer_id)
    return await publish(context, ticket_id, record, IngestSource.CHAT)


@requires(Scope.CHAT_WRITE)
async def post_chat_message(request: web.Request) -> web.Response:
    context = context_of(request)
    conversation = parse_parameter(
        CONVERSATION_ID, "conversation_id", request.match_info["conversation_id"]
    )
    message = parse_body(ChatMessageIn, await request.read())
    accepted = await accept_chat_message(context, integration_of(request), conversation, message)
    return model_response(accepted, 202)


@requires(Scope.PHONE_WRITE)
async def post_phone_call(request: web.Request) -> web.Response:
    context = context_of(request)
    call = parse_body(PhoneCallIn, await request.read())
    customer_id = customer_for(integration_of(request), call.customer_id, desk_may_name=True)
    ticket_id = phone_ticket_id(call.call_id)
    record = PhoneCallLogged(
        event_id=event_id("phone", call.call_id),
        occurred_at=context.clock.now(),
        source=context.source,
        data=PhoneCallLoggedData(
            ticket_id=ticket_id,
            call_id=call.call_id,
            caller=call.caller,
            customer_id=customer_id,
            subject=call.subject,
            summary=call.summary,
            agent=call.agent,
            suggested_priority=call.suggested_priority,
        ),
    )
    return model_response(await publish(context, ticket_id, record, IngestSource.PHONE), 202)


@requires(Scope.ACTIVITY_WRITE)
async def post_activity(request: web.Request) -> web.Response:
    """Checked against the view first (409 for an impossible transition); the processor
    checks again in the ticket's order of events and dead-letters what it refuses."""
    context = context_of(request)
    ticket_id = parse_parameter(TICKET_ID, "ticket_id", request.match_info["ticket_id"])
    given = parse_body(ActivityIn, await request.read())
    ticket = context.view.get(ticket_id)
    if ticket is None:
        raise_unknown(context, ticket_id)
    try:
        activity = TicketActivityData(
            ticket_id=ticket_id, **given.model_dump(exclude={"activity_id"})
        )
    except ValidationError as error:  # the record's own rules, should they be stricter
        raise invalid(error) from None
    now = context.clock.now()
    try:
        apply_activity(ticket, activity, now)
    except InvalidTransitionError as refusal:
        raise ApiError(409, str(refusal)) from None
    record = TicketActivity(
        event_id=event_id("ticket.activity", f"{ticket_id}:{given.activity_id}"),
        occurred_at=now,
        source=context.source,
        data=activity,
    )
    return model_response(await publish(context, ticket_id, record, IngestSource.ACTIVITY), 202)
