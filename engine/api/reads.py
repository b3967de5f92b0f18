"""Reads: one ticket with its decisions, and filtered lists, from the in-memory view."""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, ValidationError

from engine.api.context import (
    VIEW_LOADING,
    context_of,
    invalid,
    model_response,
    parse_parameter,
    raise_unknown,
    requires,
    retry_later,
)
from engine.api.contract import Health, TicketDetail, TicketList
from engine.api.security import Scope
from engine.api.writes import TICKET_ID
from engine.contract import Priority, Record, TicketStatus, Tier

MAX_LIMIT = 500


class TicketQuery(Record):
    """The filters of ``GET /tickets``; every one given must hold."""

    status: TicketStatus | None = None
    tier: Tier | None = None
    priority: Priority | None = None
    customer: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    sla: Literal["ok", "warning", "breached"] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 100


def parse_query(query: dict[str, str]) -> TicketQuery:
    try:
        # Query strings are text: lax mode turns "5" into 5 and "open" into the enum.
        return TicketQuery.model_validate(query, strict=False)
    except ValidationError as error:
        raise invalid(error) from None


@requires(Scope.TICKETS_READ)
async def get_ticket(request: web.Request) -> web.Response:
    context = context_of(request)
    ticket_id = parse_parameter(TICKET_ID, "ticket_id", request.match_info["ticket_id"])
    ticket = context.view.get(ticket_id)
    if ticket is None:
        raise_unknown(context, ticket_id)
    detail = TicketDetail(
        ticket=ticket, sla=context.view.sla(ticket), decisions=context.view.decisions(ticket_id)
    )
    return model_response(detail)


@requires(Scope.TICKETS_READ)
async def list_tickets(request: web.Request) -> web.Response:
    context = context_of(request)
    query = parse_query(dict(request.query))
    if not context.view_ready():
        raise retry_later(VIEW_LOADING)
    filters = {
        name: str(value)
        for name, value in query.model_dump(exclude={"limit"}, mode="json").items()
        if value is not None
    }
    tickets, count = context.view.find(filters, query.limit)
    return model_response(TicketList(tickets=tuple(tickets), count=count))


async def health(request: web.Request) -> web.Response:
    context = context_of(request)
    ready = context.view_ready()
    health = Health(
        status="ok", view="ready" if ready else "catching_up", tickets=len(context.view)
    )
    return model_response(health)
