"""The HTTP contract: what clients send and what they get back.

Requests are strict and refuse unknown fields, like every record; the OpenAPI document
(``engine.api.openapi``) is generated from these models, so it cannot drift from them.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from engine.contract import (
    ActivityType,
    Channel,
    Classification,
    Presence,
    Priority,
    Record,
    SpecialRoute,
    Standing,
    ThirdPartyWait,
    TicketState,
    TicketStatus,
    Tier,
    UtcDatetime,
)
from engine.contract.identity import TICKET_ID_PATTERN

# A conversation id is the only secret between a chat widget and its WebSocket: long and
# random (the widget makes one per conversation), so nobody guesses another's.
CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9_-]{16,128}$"
TICKET_ID = rf"^{TICKET_ID_PATTERN}$"
ClientId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:@-]{1,128}$")]
ConversationId = Annotated[str, StringConstraints(pattern=CONVERSATION_ID_PATTERN)]
TicketId = Annotated[str, StringConstraints(pattern=TICKET_ID)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]

# What a name, an address or a subject must never hold: they end up in mail headers, where
# a line break starts another field (and the notifier could not write the notice).
# Control characters, and every character Python or a mail system takes for a line end.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


def _one_line(value: object) -> object:
    if isinstance(value, str) and (found := _CONTROL.search(value)) is not None:
        raise ValueError(
            f"control character U+{ord(found.group()):04X} not allowed: one line of text"
        )
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=320), BeforeValidator(_one_line)]
OneLine = Annotated[str, StringConstraints(max_length=500), BeforeValidator(_one_line)]


def _email_address(value: str) -> str:
    if not re.fullmatch(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+", value):
        raise ValueError("not an e-mail address (name@domain.example, without a display name)")
    return value


EmailAddress = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=320),
    AfterValidator(_email_address),
    BeforeValidator(_one_line),
]


class ChatMessageIn(Record):
    """One message a customer wrote in the chat widget."""

    message_id: ClientId = Field(description="Unique in its conversation; a resend is ignored")
    sender: EmailAddress = Field(
        description="The customer's e-mail address, as the widget knows it: one address"
    )
    customer_id: ClientId | None = Field(
        default=None,
        description="The customer comes from the token's integration, never from the "
        "message: when given, it must be that integration's customer (else 422); an "
        "integration bound to no customer may not name one",
    )
    text: Text


class PhoneCallIn(Record):
    """A phone call an agent took, logged as a ticket."""

    call_id: ClientId = Field(description="The telephony system's call id; a resend is ignored")
    caller: Name = Field(description="Who called: name, number or e-mail")
    customer_id: ClientId | None = Field(
        default=None,
        description="The agent's word for the customer; an integration bound to a customer "
        "logs calls of that customer only (another one: 422)",
    )
    subject: OneLine = ""
    summary: Text
    agent: Name
    suggested_priority: Priority | None = Field(
        default=None, description="The agent's own priority; the rules confirm or override it"
    )


class ActivityIn(Record):
    """Something an agent or a tool did on a ticket."""

    activity_id: ClientId = Field(description="Unique per ticket; a resend is ignored")
    activity: ActivityType
    actor: Name
    note: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    message: Annotated[str, StringConstraints(max_length=20_000)] | None = Field(
        default=None, description="customer_informed: what the customer is told"
    )
    assignee: Name | None = Field(
        default=None, description="assigned: to whom; accepted: who accepts (the assignee)"
    )
    if_assignee: Annotated[str, StringConstraints(max_length=128)] | None = Field(
        default=None,
        description="assigned, unassigned: only while the ticket's assignee is this one ('' "
        "for nobody): taking a ticket nobody has, without taking it from someone who just did",
    )
    if_unaccepted: bool = Field(
        default=False,
        description="assigned, unassigned: only while the assignee has not accepted the ticket",
    )
    tier: Tier | None = Field(default=None, description="escalated: to which tier")
    priority: Priority | None = Field(
        default=None, description="reprioritized: the priority a person decided; note: why"
    )
    minutes: int | None = Field(default=None, ge=1, le=100_000, description="time_spent")
    party: EmailAddress | None = Field(
        default=None, description="party_added, party_removed: the person's e-mail address"
    )
    informed_via: Channel | None = Field(default=None, description="customer_informed: how")
    waiting_on: ThirdPartyWait | None = Field(
        default=None,
        description="waiting_on_third_party: what the ticket waits on (an upstream fix, a "
        "vendor, an RMA, other) and the third party's reference",
    )


class Accepted(Record):
    """Kafka acknowledged the event; the ticket follows asynchronously."""

    ticket_id: str
    event_id: str


class Problem(Record):
    path: str = Field(description="Where in the request: a body field path, or a parameter")
    message: str


class ErrorBody(Record):
    error: str
    problems: tuple[Problem, ...] = ()


class Decision(Record):
    """One classification of the ticket, with the rules that made it."""

    cause_event_id: str
    occurred_at: UtcDatetime
    classification: Classification


class SlaState(Record):
    state: Literal["ok", "warning", "breached"]
    obligation: str | None = None
    deadline: UtcDatetime | None = None
    explanation: str | None = None


class TicketDetail(Record):
    ticket: TicketState
    sla: SlaState
    decisions: tuple[Decision, ...] = Field(description="Oldest first; the last 50 kept")


class TicketList(Record):
    tickets: tuple[TicketState, ...] = Field(description="Most recently updated first")
    count: int = Field(ge=0, description="How many match, before the limit")


class Health(Record):
    status: Literal["ok"]
    view: Literal["ready", "catching_up"]
    tickets: int = Field(ge=0)


# --- what the chat WebSocket sends (discriminated by ``type``) ---------------------------


class ChatAccepted(Record):
    """The message is on Kafka."""

    type: Literal["accepted"] = "accepted"
    message_id: str
    ticket_id: str
    event_id: str


class ChatRefused(Record):
    """The message was not taken; 429 and 503 mean: send it again after ``retry_after``."""

    type: Literal["refused"] = "refused"
    message_id: str | None
    status: int
    error: str
    problems: tuple[Problem, ...] = ()
    retry_after: int | None = None


class ChatTicket(Record):
    """The conversation's ticket exists."""

    type: Literal["ticket"] = "ticket"
    ticket_id: str
    status: TicketStatus


class ChatReply(Record):
    """The desk informed the customer via chat."""

    type: Literal["reply"] = "reply"
    text: str
    actor: str


class ChatEscalated(Record):
    """The request goes to another team, not chat support (ROUTE-DEV)."""

    type: Literal["escalated"] = "escalated"
    route: SpecialRoute
    text: str


ChatServerMessage = ChatAccepted | ChatRefused | ChatTicket | ChatReply | ChatEscalated


AGENT_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
AgentId = Annotated[str, StringConstraints(pattern=AGENT_ID_PATTERN)]


class PresenceIn(Record):
    """An agent signs in (available), goes away or signs out."""

    presence: Presence
    note: Annotated[str, StringConstraints(max_length=500)] | None = None


class PresenceAccepted(Record):
    agent_id: str
    presence: Presence
    event_id: str


class AgentLoad(Record):
    agent_id: str
    standing: Standing = Field(description="able, or why they cannot take a ticket now")
    load: int = Field(description="Open tickets they have")
    capacity: int


class TierQueueOut(Record):
    tier: Tier
    waiting: dict[Priority, int] = Field(description="Open tickets nobody has, by priority")
    oldest_waiting_seconds: float = Field(description="0 when nothing waits")
    assigned: int
    waiting_on_third_party: int = Field(
        description="Open tickets of the tier waiting on an upstream fix, a vendor or an RMA"
    )
    agents: tuple[AgentLoad, ...]


class Queues(Record):
    tiers: tuple[TierQueueOut, ...]


class AgentQueue(Record):
    agent: AgentLoad
    tickets: tuple[TicketState, ...] = Field(
        description="Their open tickets, P1 first, oldest first, each with its status and "
        "what it waits on"
    )
