"""Who may join a ticket by naming it: ``join_decision(sender, thread, ticket, customers)``.

A ticket's id is in every notice's subject (``[#T-…]``) and Message-ID, so anyone who saw
one can name it. A mail naming a ticket joins it only when its sender is one of the
ticket's people (the requester, a party) or an address of the ticket's customer (the
customer directory's addresses, domains and notification contacts). Anyone else opens a
new ticket of their own, linked to the one they named, with the reason: a stranger's mail
can neither raise the priority of another customer's ticket nor reopen it. Pure: the
processor applies it (decision 64).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.contract import EmailReceived, TicketLink, TicketState
from engine.contract.customers import CustomerDirectory
from engine.contract.identity import (
    email_thread_root,
    event_id,
    linked_ticket_id,
    ticket_named_by_mail,
)


@dataclass(frozen=True)
class Joins:
    """The sender may write on the ticket; ``reason`` says why."""

    reason: str


@dataclass(frozen=True)
class OpensLinked:
    """The sender may not: their mail opens ``ticket_id``, linked to the named one."""

    ticket_id: str
    link: TicketLink


JoinDecision = Joins | OpensLinked


def join_decision(
    sender: str, thread: str, ticket: TicketState, customers: CustomerDirectory
) -> JoinDecision:
    """Whether ``sender`` may join ``ticket``; ``thread`` identifies the sender's mail
    thread, so their next mail in it finds the same linked ticket."""
    address = sender.strip().lower()
    if address and address == ticket.requester.strip().lower():
        return Joins(f"{address} is the requester of {ticket.ticket_id}")
    if address and address in {party.lower() for party in ticket.parties}:
        return Joins(f"{address} is a party of {ticket.ticket_id}")
    customer = customers.lookup(address) if address else None
    if customer is not None and customer.id == ticket.customer_id:
        return Joins(f"{address} belongs to {ticket.customer_id}, the customer of the ticket")
    ticket_customer = customers.by_id(ticket.customer_id) if ticket.customer_id else None
    if address and ticket_customer is not None and address in ticket_customer.contacts:
        return Joins(f"{address} is a notification contact of {ticket.customer_id}")
    whose = (
        f"not an address of its customer {ticket.customer_id}"
        if ticket.customer_id
        else "and the ticket's customer is unknown"
    )
    reason = (
        f"{address or 'an unnamed sender'} named {ticket.ticket_id} but is neither its "
        f"requester nor a party of it, {whose}: opened as a new ticket linked to it"
    )
    return OpensLinked(
        ticket_id=linked_ticket_id(ticket.ticket_id, address, thread),
        link=TicketLink(ticket_id=ticket.ticket_id, reason=reason),
    )


def mail_join_decision(
    event: EmailReceived, ticket: TicketState | None, customers: CustomerDirectory
) -> JoinDecision | None:
    """The join decision for a mail that names an existing ticket by the engine's id (its
    tag or a notice's Message-ID); None when there is nothing to decide: the ticket is
    new, the mail found it by the customer's own thread, or it was put back already."""
    data = event.data
    if ticket is None or data.linked_to is not None:
        return None
    named = ticket_named_by_mail(data.subject, data.in_reply_to, data.references)
    if named != data.ticket_id:
        return None
    thread = email_thread_root(data.message_id, data.in_reply_to, data.references)
    return join_decision(data.from_address, thread or event.event_id, ticket, customers)


def opened_beside(event: EmailReceived, decision: OpensLinked) -> EmailReceived:
    """The mail put back under the ticket it opens, naming the one it could not join.
    The event id derives from the mail's, so a redelivery is recognised there."""
    data = event.data.model_copy(
        update={"ticket_id": decision.ticket_id, "linked_to": decision.link}
    )
    return event.model_copy(
        update={"event_id": event_id("email-linked", event.event_id), "data": data}
    )
