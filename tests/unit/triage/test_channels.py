"""Chat and phone tickets: identity, triage, the suggested priority's verdict, and what the
chat WebSocket tells the customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.api.chat import ChatHub, ChatSocket, escalation_notice, reply_notice
from engine.api.contract import ChatReply
from engine.api.view import sla_state
from engine.contract import (
    ActivityType,
    Channel,
    ChatMessageReceived,
    ChatMessageReceivedData,
    CustomerProfile,
    PhoneCallLogged,
    PhoneCallLoggedData,
    Priority,
    SlaAlertData,
    SlaBreached,
    SpecialRoute,
    TicketActivityData,
    TicketMessage,
)
from engine.contract.customers import Customer, CustomerDirectory
from engine.contract.identity import chat_ticket_id, event_id, phone_ticket_id
from engine.rules.classify import classify
from engine.rules.ruleset import load_ruleset
from engine.triage.triage import triage

RULES = load_ruleset()
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
CONVERSATION = "3b1f0c0e5c6a4e0f9d1a"


def chat(text: str, message_id: str, customer_id: str | None = None) -> ChatMessageReceived:
    return ChatMessageReceived(
        event_id=event_id("chat", f"{CONVERSATION}:{message_id}"),
        occurred_at=T0,
        source="http://test",
        data=ChatMessageReceivedData(
            ticket_id=chat_ticket_id(CONVERSATION), conversation_id=CONVERSATION,
            message_id=message_id, sender="ana@acme.example", customer_id=customer_id,
            text=text,
        ),
    )  # fmt: skip


def test_one_conversation_is_one_ticket_and_calls_are_their_own() -> None:
    assert chat_ticket_id(CONVERSATION) == chat_ticket_id(CONVERSATION)
    assert chat_ticket_id(CONVERSATION) != chat_ticket_id(CONVERSATION + "x")
    assert phone_ticket_id(CONVERSATION) != chat_ticket_id(CONVERSATION)


def test_a_chat_opens_a_ticket_and_its_next_message_updates_it() -> None:
    directory = CustomerDirectory([Customer(id="acme", domains=("acme.example",), language="en")])
    first = triage(None, chat("la central está caída", "m1"), RULES, T0, directory)
    assert first.ticket is not None
    assert first.ticket.channel is Channel.CHAT and first.ticket.priority is Priority.P1
    assert first.ticket.customer_id == "acme"  # found by the sender's domain

    later = T0 + timedelta(minutes=3)
    second = triage(first.ticket, chat("¿alguna novedad?", "m2"), RULES, later, directory)
    assert second.ticket is not None
    assert second.ticket.ticket_id == first.ticket.ticket_id
    assert second.ticket.event_count == 2
    assert second.activity is not None
    assert second.activity.activity is ActivityType.CUSTOMER_REPLIED

    again = triage(second.ticket, chat("¿alguna novedad?", "m2"), RULES, later, directory)
    assert again.duplicate


def test_an_unknown_customer_id_is_kept() -> None:
    outcome = triage(None, chat("hola", "m1", customer_id="zeta"), RULES, T0)
    assert outcome.ticket is not None and outcome.ticket.customer_id == "zeta"


@pytest.mark.parametrize(
    ("body", "suggested", "priority", "verdict"),
    [
        ("How do I add an extension?", "P4", "P4", "suggested priority P4 confirmed by the rules"),
        ("How do I add an extension?", "P2", "P2",
         "suggested priority P2 kept: the rules alone say P4, and a suggestion is never lowered"),
        ("la central está caída", "P3", "P1",
         "suggested priority P3 overridden: the rules decided P1"),
    ],
)  # fmt: skip
def test_the_agents_priority_is_confirmed_kept_or_overridden(
    body: str, suggested: str, priority: str, verdict: str
) -> None:
    message = TicketMessage(channel=Channel.PHONE, body=body,
                            suggested_priority=Priority(suggested))  # fmt: skip
    decided = classify(message, RULES)

    assert decided.priority is Priority(priority)
    assert verdict in decided.explanation


def test_a_phone_call_is_triaged_with_its_summary_and_suggestion() -> None:
    call = PhoneCallLogged(
        event_id=event_id("phone", "call-1"), occurred_at=T0, source="http://test",
        data=PhoneCallLoggedData(
            ticket_id=phone_ticket_id("call-1"), call_id="call-1", caller="+52 55 1234 5678",
            customer_id="acme", subject="Consulta", summary="How do I add an extension?",
            agent="luis", suggested_priority=Priority.P2,
        ),
    )  # fmt: skip
    outcome = triage(None, call, RULES, T0)

    assert outcome.ticket is not None and outcome.classification is not None
    assert outcome.ticket.channel is Channel.PHONE and outcome.ticket.priority is Priority.P2
    assert outcome.ticket.customer_id == "acme" and outcome.ticket.requester == "+52 55 1234 5678"


def test_a_development_request_in_chat_tells_the_customer_in_their_language() -> None:
    outcome = triage(None, chat("Quisiera una nueva funcionalidad", "m1"), RULES, T0)
    assert outcome.ticket is not None
    assert SpecialRoute.DEVELOPMENT in outcome.ticket.special_routes
    notice = escalation_notice(outcome.ticket)
    assert notice is not None and "equipo de desarrollo" in notice.text

    english = outcome.ticket.model_copy(
        update={"customer": CustomerProfile(customer_id="acme", language="en")}
    )
    notice = escalation_notice(english)
    assert notice is not None and "development team" in notice.text


def test_the_socket_is_told_the_ticket_and_the_escalation_once() -> None:
    ticket = triage(None, chat("Quisiera una nueva funcionalidad", "m1"), RULES, T0).ticket
    assert ticket is not None
    hub, socket = ChatHub(), ChatSocket()
    hub.join(ticket.ticket_id, socket)

    hub.on_ticket(ticket)
    hub.on_ticket(ticket)
    inform = TicketActivityData(
        ticket_id=ticket.ticket_id,
        activity=ActivityType.CUSTOMER_INFORMED,
        actor="luis",
        informed_via=Channel.CHAT,
        message="Hola Ana",
    )
    hub.on_activity(inform)
    hub.on_activity(inform.model_copy(update={"informed_via": Channel.EMAIL}))
    hub.leave(ticket.ticket_id, socket)
    hub.on_activity(inform)

    told = [socket.outbox.get_nowait().type for _ in range(socket.outbox.qsize())]
    assert told == ["ticket", "escalated", "reply"]
    assert reply_notice(inform) == ChatReply(text="Hola Ana", actor="luis")


def test_the_sla_state_is_the_latest_alert_until_the_customer_is_informed() -> None:
    ticket = triage(None, chat("la central está caída", "m1"), RULES, T0).ticket
    assert ticket is not None
    alert = SlaBreached(
        event_id="a1", occurred_at=T0 + timedelta(hours=2), source="sla",
        data=SlaAlertData(ticket_id=ticket.ticket_id, obligation="UPD-P1", instance=1,
                          dedup_key="k", deadline=T0 + timedelta(hours=2), calendar="24x7",
                          explanation="P1: every 2 hours"),
    )  # fmt: skip

    assert sla_state(ticket, None).state == "ok"
    assert sla_state(ticket, alert).state == "breached"
    informed = ticket.model_copy(update={"last_informed_at": T0 + timedelta(hours=3)})
    assert sla_state(informed, alert).state == "ok"
