"""Who may join a ticket by naming it: the requester, a party, an address of the ticket's
customer; anyone else opens a new ticket linked to the one they named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.contract import (
    Channel,
    EmailReceived,
    EmailReceivedData,
    Priority,
    TicketState,
    TicketStatus,
    Tier,
)
from engine.contract.customers import Customer, CustomerDirectory
from engine.contract.identity import event_id, linked_ticket_id, ticket_tag
from engine.rules.ruleset import load_ruleset
from engine.triage.joining import Joins, OpensLinked, join_decision, mail_join_decision
from engine.triage.publications import publications
from engine.triage.triage import triage

RULES = load_ruleset()
T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
TICKET = "T-AAAAAAAAAAAAA"
DIRECTORY = CustomerDirectory(
    [
        Customer(
            id="acme",
            domains=("acme.example",),
            addresses=("director.acme@gmail.example",),
            contacts=("noc@outsourced-noc.example",),
        ),
        Customer(id="globex", domains=("globex.example",)),
        Customer(id="acme-noc", contacts=("guardia@noc-provider.example",)),
    ]
)


def ticket(customer_id: str | None = "acme") -> TicketState:
    return TicketState(
        ticket_id=TICKET,
        status=TicketStatus.OPEN,
        channel=Channel.EMAIL,
        subject="La central está caída",
        requester="ventas@acme.example",
        customer_id=customer_id,
        parties=("consultor@partner.example",),
        opened_at=T0,
        updated_at=T0,
        priority=Priority.P3,
        category="pbx_down",
        tier=Tier.L1,
        special_routes=(),
        tags=(),
        event_count=1,
        recent_event_ids=("email:first",),
        ruleset_version=RULES.fingerprint,
    )


@pytest.mark.parametrize(
    ("sender", "customer_id", "joins"),
    [
        ("ventas@acme.example", "acme", True),  # the requester
        ("VENTAS@Acme.Example", "acme", True),  # whatever its case
        ("consultor@partner.example", "acme", True),  # a party
        ("luis@acme.example", "acme", True),  # the customer's domain
        ("it@mail.acme.example", "acme", True),  # a subdomain of it
        ("director.acme@gmail.example", "acme", True),  # an address the directory lists
        ("noc@outsourced-noc.example", "acme", True),  # a notification contact
        ("guardia@noc-provider.example", "acme", False),  # another customer's contact
        ("mark@globex.example", "acme", False),  # another customer
        ("spam@elsewhere.example", "acme", False),  # nobody the directory knows
        ("acme.example@elsewhere.example", "acme", False),  # the domain is what counts
        ("", "acme", False),  # no sender at all
        ("ventas@acme.example", None, True),  # an unknown customer's requester
        ("luis@acme.example", None, False),  # the customer is unknown: only its people
    ],
)
def test_who_may_join_a_ticket(sender: str, customer_id: str | None, joins: bool) -> None:
    decision = join_decision(sender, "thread@x", ticket(customer_id), DIRECTORY)

    assert isinstance(decision, Joins) is joins


def test_a_stranger_opens_a_ticket_of_their_own_linked_with_the_reason() -> None:
    decision = join_decision("Spam@Elsewhere.example", "thread@x", ticket(), DIRECTORY)

    assert isinstance(decision, OpensLinked)
    assert decision.ticket_id == linked_ticket_id(TICKET, "spam@elsewhere.example", "thread@x")
    assert decision.ticket_id != TICKET
    assert decision.link.ticket_id == TICKET
    assert "spam@elsewhere.example" in decision.link.reason
    assert "not an address of its customer acme" in decision.link.reason


def test_the_same_strangers_next_mail_in_the_thread_finds_the_same_linked_ticket() -> None:
    first = join_decision("spam@elsewhere.example", "thread@x", ticket(), DIRECTORY)
    again = join_decision("spam@elsewhere.example", "thread@x", ticket(), DIRECTORY)
    other = join_decision("eve@elsewhere.example", "thread@x", ticket(), DIRECTORY)

    assert isinstance(first, OpensLinked) and isinstance(again, OpensLinked)
    assert isinstance(other, OpensLinked)
    assert first.ticket_id == again.ticket_id != other.ticket_id


def mail(sender: str, subject: str, in_reply_to: str | None = None) -> EmailReceived:
    return EmailReceived(
        event_id=event_id("email", f"{sender}{subject}{in_reply_to}"),
        occurred_at=T0,
        source="smtp://test",
        data=EmailReceivedData(
            ticket_id=TICKET,
            message_id=f"reply.{sender}",
            in_reply_to=in_reply_to,
            references=(),
            mail_from=sender,
            rcpt_to=("soporte@support.example.com",),
            from_address=sender,
            from_name="",
            subject=subject,
            text="URGENTE: la central está caída, no entran llamadas",
            text_truncated=False,
            new_text="URGENTE: la central está caída, no entran llamadas",
            automated_reason=None,
            date=None,
            attachments=(),
            peer="127.0.0.1",
            size_bytes=100,
        ),
    )


@pytest.mark.parametrize(
    ("event", "decided"),
    [
        (mail("spam@elsewhere.example", f"Re: {ticket_tag(TICKET)} caída"), True),  # by tag
        (mail("spam@elsewhere.example", "Re: caída", f"ack.{TICKET}@support.example"), True),
        (mail("spam@elsewhere.example", "Re: caída", "customer-thread@acme.example"), False),
    ],
)
def test_only_a_mail_naming_the_ticket_by_the_engines_id_is_decided(
    event: EmailReceived, decided: bool
) -> None:
    assert (mail_join_decision(event, ticket(), DIRECTORY) is not None) is decided
    assert mail_join_decision(event, None, DIRECTORY) is None  # no ticket yet: it opens it


def test_a_strangers_tagged_mail_changes_nothing_on_the_ticket_and_is_put_back_linked() -> None:
    stranger = mail("spam@elsewhere.example", f"URGENTE {ticket_tag(TICKET)}")

    outcome = triage(ticket(), stranger, RULES, T0, DIRECTORY)

    assert outcome.ticket == ticket() and not outcome.routed and outcome.activity is None
    assert publications(outcome, stranger, T0, "test") == []
    put_back = outcome.redirected
    assert put_back is not None and put_back.data.linked_to is not None
    assert put_back.data.ticket_id != TICKET
    assert put_back.data.linked_to.ticket_id == TICKET
    assert put_back.event_id != stranger.event_id


def test_the_put_back_mail_opens_a_linked_ticket_of_the_strangers_own() -> None:
    stranger = mail("spam@elsewhere.example", f"URGENTE {ticket_tag(TICKET)}")
    put_back = triage(ticket(), stranger, RULES, T0, DIRECTORY).redirected
    assert put_back is not None

    outcome = triage(None, put_back, RULES, T0, DIRECTORY)

    assert outcome.ticket is not None and outcome.classification is not None
    assert outcome.ticket.ticket_id == put_back.data.ticket_id
    assert outcome.ticket.linked_to == put_back.data.linked_to
    assert (outcome.ticket.requester, outcome.ticket.customer_id) == (
        "spam@elsewhere.example",
        None,
    )
    assert put_back.data.linked_to is not None
    assert put_back.data.linked_to.reason in outcome.classification.explanation
    again = triage(outcome.ticket, put_back, RULES, T0, DIRECTORY)
    assert again.duplicate


def test_a_party_of_the_customer_joins_by_tag_and_may_raise_the_priority() -> None:
    colleague = mail("luis@acme.example", f"URGENTE {ticket_tag(TICKET)}")

    outcome = triage(ticket(), colleague, RULES, T0, DIRECTORY)

    assert outcome.redirected is None
    assert outcome.ticket is not None and outcome.ticket.priority is Priority.P1
    assert outcome.ticket.linked_to is None
