"""The activity family: agents' actions, chat messages and logged phone calls."""

from __future__ import annotations

from pydantic import Field

from engine.contract.base import ActivityType, Channel, Presence, Priority, Record, Tier
from engine.contract.ticket import ThirdPartyWait, TicketState


class TicketActivityData(Record):
    """One thing done on a ticket. Agents and tools write it to the ticket events topic; the
    processor applies it and republishes it, with ``customer_id`` and ``ticket`` filled, on
    the ticket activity topic."""

    ticket_id: str
    activity: ActivityType
    actor: str = Field(min_length=1, description="Who did it: an agent, a tool, the customer")
    note: str | None = Field(default=None, description="Free text; the reason of an escalation")
    message: str | None = Field(
        default=None, description="customer_informed: what the customer is told"
    )
    assignee: str | None = Field(
        default=None, description="assigned: to whom; accepted: who accepts (the assignee)"
    )
    if_assignee: str | None = Field(
        default=None,
        max_length=128,
        description="assigned: applies only while the ticket's assignee is this one ('' for "
        "nobody), so a second decision about the same ticket is refused (the tier workers)",
    )
    if_unaccepted: bool = Field(
        default=False,
        description="assigned, unassigned: applies only while the assignee has not accepted "
        "the ticket (the tier workers' reassignments)",
    )
    explanation: tuple[str, ...] = Field(
        default=(), description="assigned by the tier workers: why this agent, who was passed over"
    )
    tier: Tier | None = Field(default=None, description="escalated: to which tier")
    priority: Priority | None = Field(
        default=None, description="reprioritized: the priority a person decided (reason in note)"
    )
    minutes: int | None = Field(default=None, ge=0, description="time_spent: minutes worked")
    party: str | None = Field(
        default=None, description="party_added, party_removed: whose e-mail address"
    )
    waiting_on: ThirdPartyWait | None = Field(
        default=None, description="waiting_on_third_party: what the ticket waits on"
    )
    informed_via: Channel | None = Field(default=None, description="customer_informed: how")
    customer_id: str | None = Field(default=None, description="Filled by the processor")
    ticket: TicketState | None = Field(
        default=None, description="The ticket after the activity; filled by the processor"
    )


class AgentPresenceData(Record):
    """An agent signed in, went away or signed out (the API; keyed by the agent's id on the
    compacted presence topic, so the latest is each agent's presence now)."""

    agent_id: str = Field(min_length=1, max_length=64)
    presence: Presence
    actor: str = Field(min_length=1, description="Who set it: the agent, a lead, a tool")
    note: str | None = Field(default=None, max_length=500)


class ChatMessageReceivedData(Record):
    ticket_id: str = Field(description="Derived from the conversation: one chat, one ticket")
    conversation_id: str = Field(min_length=1, max_length=128)
    message_id: str = Field(min_length=1, max_length=128, description="Unique in its chat")
    sender: str = Field(description="Who wrote it, as the chat widget knows them (e-mail)")
    customer_id: str | None = Field(description="None: an unknown customer")
    text: str


class PhoneCallLoggedData(Record):
    ticket_id: str = Field(description="Derived from the call id")
    call_id: str = Field(min_length=1, max_length=128)
    caller: str = Field(description="Who called: name, number or e-mail")
    customer_id: str | None = Field(description="None: an unknown customer")
    subject: str
    summary: str
    agent: str = Field(description="The agent who took the call")
    suggested_priority: Priority | None = Field(
        description="The agent's own priority; the rules confirm or override it"
    )
