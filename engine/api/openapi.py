"""The OpenAPI 3.1 document, generated from the pydantic models of ``engine.api.contract``
(see docs/decisions/0020-openapi-from-pydantic-models.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from engine import __version__
from engine.api.contract import (
    AGENT_ID_PATTERN,
    CONVERSATION_ID_PATTERN,
    TICKET_ID,
    Accepted,
    ActivityIn,
    AgentQueue,
    ChatAccepted,
    ChatEscalated,
    ChatMessageIn,
    ChatRefused,
    ChatReply,
    ChatTicket,
    ErrorBody,
    Health,
    PhoneCallIn,
    PresenceAccepted,
    PresenceIn,
    Queues,
    TicketDetail,
    TicketList,
)
from engine.api.reads import MAX_LIMIT
from engine.api.security import Scope
from engine.contract import Priority, TicketStatus, Tier

REF = "#/components/schemas/{model}"
MODELS: tuple[type[BaseModel], ...] = (
    ChatMessageIn,
    PhoneCallIn,
    ActivityIn,
    Accepted,
    ErrorBody,
    TicketDetail,
    TicketList,
    Health,
    PresenceIn,
    PresenceAccepted,
    Queues,
    AgentQueue,
    # The chat WebSocket's messages: OpenAPI cannot describe the socket, but their schemas
    # belong to the contract.
    ChatAccepted,
    ChatRefused,
    ChatTicket,
    ChatReply,
    ChatEscalated,
)
REFUSALS = {
    "401": "No valid bearer token",
    "403": "The token lacks the scope, or the Origin is not allowed",
    "413": "The body is over the size limit",
    "422": "Invalid input; ``problems`` name the path of each bad field",
    "429": "Over the token's rate limit; retry after ``Retry-After`` seconds",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _path_parameter(name: str, pattern: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": pattern},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _enum(values: type[Any]) -> dict[str, Any]:
    return {"type": "string", "enum": [member.value for member in values]}


def _operation(
    summary: str,
    scope: Scope,
    ok: tuple[str, dict[str, Any]],
    body: type[BaseModel] | None = None,
    parameters: tuple[dict[str, Any], ...] = (),
    not_found: bool = False,
    conflict: bool = False,
) -> dict[str, Any]:
    responses: dict[str, Any] = {ok[0]: ok[1]}
    for status, description in REFUSALS.items():
        responses[status] = _json(ErrorBody, description)
    responses["503"] = _json(
        ErrorBody,
        "Kafka did not acknowledge (writes), or the ticket view is still loading; retry after "
        "Retry-After",
    )
    if not_found:
        responses["404"] = _json(ErrorBody, "No such ticket (yet), agent or agents directory")
    if conflict:
        responses["409"] = _json(ErrorBody, "Impossible transition; the error says why")
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": [scope.value]}],
        "parameters": list(parameters),
        "responses": responses,
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return operation


def openapi_document() -> dict[str, Any]:
    _, schemas = models_json_schema([(model, "validation") for model in MODELS], ref_template=REF)
    conversation = _path_parameter("conversation_id", CONVERSATION_ID_PATTERN)
    ticket = _path_parameter("ticket_id", TICKET_ID)
    agent = _path_parameter("agent_id", AGENT_ID_PATTERN)
    accepted = ("202", _json(Accepted, "On Kafka (acknowledged); the ticket follows"))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ticket routing engine",
            "version": __version__,
            "description": "Chat, phone entry, ticket activity and ticket queries. The chat "
            "WebSocket is GET /chat/conversations/{conversation_id}/ws: it takes ChatMessageIn "
            "objects as text frames and sends ChatAccepted, ChatRefused, ChatTicket, ChatReply "
            "and ChatEscalated objects (see README).",
        },
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/chat/conversations/{conversation_id}/messages": {
                "post": _operation(
                    "A customer's chat message",
                    Scope.CHAT_WRITE,
                    accepted,
                    ChatMessageIn,
                    (conversation,),
                )
            },
            "/phone/calls": {
                "post": _operation(
                    "Log a phone call as a ticket",
                    Scope.PHONE_WRITE,
                    accepted,
                    PhoneCallIn,
                )
            },
            "/tickets/{ticket_id}/activity": {
                "post": _operation(
                    "Record what was done on a ticket",
                    Scope.ACTIVITY_WRITE,
                    accepted,
                    ActivityIn,
                    (ticket,),
                    not_found=True,
                    conflict=True,
                )
            },
            "/tickets/{ticket_id}": {
                "get": _operation(
                    "One ticket, its SLA state and its decisions",
                    Scope.TICKETS_READ,
                    ("200", _json(TicketDetail, "The ticket")),
                    parameters=(ticket,),
                    not_found=True,
                )
            },
            "/tickets": {
                "get": _operation(
                    "Tickets matching every filter given, most recently updated first",
                    Scope.TICKETS_READ,
                    ("200", _json(TicketList, "The tickets")),
                    parameters=(
                        _query("status", _enum(TicketStatus), "Ticket status"),
                        _query("tier", _enum(Tier), "Tier"),
                        _query("priority", _enum(Priority), "Priority"),
                        _query(
                            "customer",
                            {"type": "string", "minLength": 1, "maxLength": 128},
                            "Customer id",
                        ),
                        _query(
                            "sla",
                            {"type": "string", "enum": ["ok", "warning", "breached"]},
                            "SLA state: the latest alert unless informed since",
                        ),
                        _query(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
                            "At most this many",
                        ),
                    ),
                )
            },
            "/agents/{agent_id}/presence": {
                "post": _operation(
                    "An agent signs in (available), goes away or signs out",
                    Scope.PRESENCE_WRITE,
                    ("202", _json(PresenceAccepted, "On Kafka (acknowledged)")),
                    PresenceIn,
                    (agent,),
                    not_found=True,
                )
            },
            "/queues": {
                "get": _operation(
                    "Each tier: tickets waiting by priority, the oldest waiting age, tickets "
                    "assigned, and each agent's standing and load",
                    Scope.TICKETS_READ,
                    ("200", _json(Queues, "The queues")),
                    not_found=True,
                )
            },
            "/agents/{agent_id}/queue": {
                "get": _operation(
                    "One agent's standing, load and open tickets",
                    Scope.TICKETS_READ,
                    ("200", _json(AgentQueue, "The agent's queue")),
                    parameters=(agent,),
                    not_found=True,
                )
            },
            "/health": {
                "get": {
                    "summary": "Liveness, and whether the ticket view has caught up",
                    "security": [],
                    "responses": {"200": _json(Health, "Running")},
                }
            },
        },
    }
