"""The chat WebSocket: ``/chat/conversations/{conversation_id}/ws``.

The widget sends the customer's messages (the body of ``POST .../messages``, as JSON text
frames) and receives, as JSON objects with a ``type``:
- ``accepted`` (message_id, ticket_id, event_id): the message is on Kafka;
- ``refused`` (message_id, status, error, problems): not taken; 503/429 mean retry;
- ``ticket`` (ticket_id, status): the ticket exists (sent once, on opening if it already does);
- ``reply`` (text, actor): the desk informed the customer via chat;
- ``escalated`` (route, text): a request for new functionality goes to the development
  team, not chat support (DOMAIN.md ROUTE-DEV).

Every data frame counts against the token's rate limit. A binary frame is refused (415),
a message nested deeper than ``MAX_JSON_DEPTH`` is refused (422) before it is parsed, and
one over the API's body limit closes the socket with code 1009 (message too big).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import defaultdict

from aiohttp import WSMsgType, web
from pydantic_core import from_json

from engine.api.context import (
    ApiError,
    context_of,
    integration_of,
    parse_body,
    parse_parameter,
    requires,
)
from engine.api.contract import (
    ChatAccepted,
    ChatEscalated,
    ChatMessageIn,
    ChatRefused,
    ChatReply,
    ChatServerMessage,
    ChatTicket,
    Problem,
)
from engine.api.security import Integration, Scope
from engine.api.writes import CONVERSATION_ID, accept_chat_message
from engine.contract import (
    ActivityType,
    Channel,
    SpecialRoute,
    TicketActivityData,
    TicketState,
)
from engine.contract.identity import chat_ticket_id

log = logging.getLogger(__name__)
OUTBOX_LIMIT = 100
MAX_JSON_DEPTH = 16  # a chat message is one flat object; deeper is not one
_JSON_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')  # strings, and brackets outside them

ESCALATED_TO_DEVELOPMENT = {
    "es": "Su solicitud es de una nueva funcionalidad, que el soporte por chat no atiende: "
    "la hemos escalado al equipo de desarrollo, que le responderá según sus políticas.",
    "en": "Your request is for new functionality, which chat support does not handle: it "
    "has been escalated to the development team, who will answer under their policies.",
}


def ticket_notice(ticket: TicketState) -> ChatTicket:
    return ChatTicket(ticket_id=ticket.ticket_id, status=ticket.status)


def escalation_notice(ticket: TicketState) -> ChatEscalated | None:
    if SpecialRoute.DEVELOPMENT not in ticket.special_routes:
        return None
    language = ticket.customer.language if ticket.customer else None
    text = ESCALATED_TO_DEVELOPMENT.get(language or "es", ESCALATED_TO_DEVELOPMENT["es"])
    return ChatEscalated(route=SpecialRoute.DEVELOPMENT, text=text)


def reply_notice(activity: TicketActivityData) -> ChatReply | None:
    if activity.activity is not ActivityType.CUSTOMER_INFORMED:
        return None
    if activity.informed_via is not Channel.CHAT:
        return None
    return ChatReply(text=activity.message or activity.note or "", actor=activity.actor)


class ChatSocket:
    """One open conversation: what it has been told, and its outbox."""

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[ChatServerMessage] = asyncio.Queue(OUTBOX_LIMIT)
        self._ticket_told = False
        self._escalation_told = False

    def send(self, message: ChatServerMessage) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a client that stopped reading
            self.outbox.put_nowait(message)

    def ticket_seen(self, ticket: TicketState) -> None:
        if not self._ticket_told:
            self._ticket_told = True
            self.send(ticket_notice(ticket))
        escalation = escalation_notice(ticket)
        if escalation is not None and not self._escalation_told:
            self._escalation_told = True
            self.send(escalation)


class ChatHub:
    """The open conversations by ticket id; fed by the view's follower."""

    def __init__(self) -> None:
        self._open: dict[str, set[ChatSocket]] = defaultdict(set)

    def join(self, ticket_id: str, socket: ChatSocket) -> None:
        self._open[ticket_id].add(socket)

    def leave(self, ticket_id: str, socket: ChatSocket) -> None:
        sockets = self._open.get(ticket_id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._open[ticket_id]

    def on_ticket(self, ticket: TicketState) -> None:
        for socket in self._open.get(ticket.ticket_id, ()):
            socket.ticket_seen(ticket)

    def on_activity(self, activity: TicketActivityData) -> None:
        notice = reply_notice(activity)
        if notice is None:
            return
        for socket in self._open.get(activity.ticket_id, ()):
            socket.send(notice)


HUB = web.AppKey("chat_hub", ChatHub)


@requires(Scope.CHAT_WRITE)
async def chat_websocket(request: web.Request) -> web.WebSocketResponse:
    context = context_of(request)
    conversation = parse_parameter(
        CONVERSATION_ID, "conversation_id", request.match_info["conversation_id"]
    )
    hub = request.app[HUB]
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=context.max_body_bytes)
    await ws.prepare(request)
    ticket_id = chat_ticket_id(conversation)
    socket = ChatSocket()
    hub.join(ticket_id, socket)
    writer = asyncio.create_task(_drain(socket, ws))
    existing = context.view.get(ticket_id)
    if existing is not None:
        socket.ticket_seen(existing)
    integration = integration_of(request)
    try:
        async for frame in ws:
            if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue  # an over-large message is an ERROR: aiohttp closes with 1009
            text = frame.data if frame.type is WSMsgType.TEXT else ""
            wait = context.chat_limit.retry_after(
                conversation, request.remote or "unknown"
            ) or context.limiter.retry_after(integration.name)
            if wait:
                socket.send(_refused(text, 429, "too many requests", wait))
            elif frame.type is WSMsgType.BINARY:
                socket.send(_refused(text, 415, "only JSON text frames are taken"))
            else:
                read = read_frame(text)
                if isinstance(read, ChatMessageIn):
                    socket.send(await _take(request, integration, conversation, text, read))
                else:
                    socket.send(read)
    finally:
        hub.leave(ticket_id, socket)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    return ws


def nested_deeper_than(text: str, limit: int) -> bool:
    """Whether the JSON ``text`` opens more than ``limit`` arrays or objects inside each
    other; one pass that stops at the first bracket past the limit, and never recurses."""
    depth = 0
    for token in _JSON_NESTING.finditer(text):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif bracket in ("]", "}"):
            depth -= 1
    return False


def read_frame(text: str) -> ChatMessageIn | ChatRefused:
    """A text frame as the message it carries, or the socket's refusal of it (``422``):
    nested deeper than ``MAX_JSON_DEPTH`` (measured before any parse), or not a valid
    message. Never raises on text aiohttp hands over (valid UTF-8 only)."""
    if nested_deeper_than(text, MAX_JSON_DEPTH):
        return _refused("", 422, f"the message is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return parse_body(ChatMessageIn, text.encode())
    except ApiError as error:
        return _refused_by(text, error)


async def _take(
    request: web.Request,
    integration: Integration,
    conversation: str,
    text: str,
    message: ChatMessageIn,
) -> ChatServerMessage:
    try:
        context = context_of(request)
        accepted = await accept_chat_message(context, integration, conversation, message)
    except ApiError as error:
        return _refused_by(text, error)
    return ChatAccepted(message_id=message.message_id, **accepted.model_dump())


def _refused_by(text: str, error: ApiError) -> ChatRefused:
    retry_after = error.headers.get("Retry-After")
    return _refused(
        text,
        error.status,
        error.body.error,
        int(retry_after) if retry_after else None,
        error.body.problems,
    )


def _refused(
    text: str,
    status: int,
    error: str,
    retry_after: int | None = None,
    problems: tuple[Problem, ...] = (),
) -> ChatRefused:
    try:  # pydantic's parser: bounded depth, no Python recursion
        message_id = from_json(text).get("message_id") if text else None
    except (ValueError, AttributeError):
        message_id = None
    return ChatRefused(
        message_id=message_id if isinstance(message_id, str) else None,
        status=status,
        error=error,
        problems=problems,
        retry_after=retry_after,
    )


async def _drain(socket: ChatSocket, ws: web.WebSocketResponse) -> None:
    while True:
        message = await socket.outbox.get()
        try:
            await ws.send_str(message.model_dump_json())
        except (ConnectionResetError, RuntimeError):
            return
