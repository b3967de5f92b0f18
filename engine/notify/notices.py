"""What the customer is told, and when: pure functions from records to outgoing mail.

An acknowledgement goes out when a ticket opened by e-mail is first routed, in the
customer's language, with the ticket tag in the subject so the replies thread back, and
the update cadence the support plan promises for the ticket's priority (DOMAIN.md UPD-*).
An update goes out when the desk records a ``customer_informed`` activity with a message
to be sent by e-mail: the agent's text, under the same tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

from engine.contract import (
    ActivityType,
    Channel,
    Priority,
    TicketActivity,
    TicketRouted,
    TicketState,
)
from engine.contract.identity import event_id, ticket_tag
from engine.ingest.mail.automated import base_subject

_DAEMON_LOCAL_PARTS = {"mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply"}

_CADENCE = {
    "es": {
        Priority.P1: "le informaremos del avance cada 2 horas hasta resolverlo",
        Priority.P2: "le informaremos del avance al final de cada día hasta resolverlo",
        Priority.P3: "le informaremos del avance al final de cada día hasta resolverlo",
        Priority.P4: "le informaremos del avance cada semana hasta resolverlo",
    },
    "en": {
        Priority.P1: "we will update you every 2 hours until it is resolved",
        Priority.P2: "we will update you at the end of each day until it is resolved",
        Priority.P3: "we will update you at the end of each day until it is resolved",
        Priority.P4: "we will update you every week until it is resolved",
    },
}
_ACK = {
    "es": (
        "{tag} Recibimos su solicitud: {subject}",
        "Hola,\n\nRecibimos su solicitud y abrimos el ticket {ticket} con prioridad "
        "{priority}; {cadence}.\n\nPara agregar información, responda a este correo sin "
        "cambiar el asunto.\n\nMesa de soporte\n",
    ),
    "en": (
        "{tag} We received your request: {subject}",
        "Hello,\n\nWe received your request and opened ticket {ticket} with priority "
        "{priority}; {cadence}.\n\nTo add information, reply to this e-mail without "
        "changing the subject.\n\nSupport desk\n",
    ),
}


_UPDATE = {
    "es": (
        "{tag} Avance de su solicitud: {subject}",
        "{message}\n\n--\nTicket {ticket}, prioridad {priority}; {cadence}.\nPara agregar "
        "información, responda a este correo sin cambiar el asunto.\n",
    ),
    "en": (
        "{tag} Update on your request: {subject}",
        "{message}\n\n--\nTicket {ticket}, priority {priority}; {cadence}.\nTo add "
        "information, reply to this e-mail without changing the subject.\n",
    ),
}


@dataclass(frozen=True)
class Notice:
    to: str
    message: EmailMessage
    kind: str = "acknowledgement"


def may_receive_mail(address: str) -> bool:
    """Never write to an empty address or a mail system (no loops with bounces)."""
    local, at, domain = address.strip().lower().rpartition("@")
    return bool(at and local and domain) and local not in _DAEMON_LOCAL_PARTS


def acknowledgement(
    routed: TicketRouted, language: str, sender: str, engine_domain: str
) -> Notice | None:
    """The acknowledgement for a ticket's first routing, or None when none is due."""
    ticket = routed.data.ticket
    if ticket.channel is not Channel.EMAIL or ticket.event_count != 1:
        return None
    if not may_receive_mail(ticket.requester):
        return None
    message = _mail(_ACK, language, ticket, sender, f"ack.{ticket.ticket_id}@{engine_domain}")
    message["Auto-Submitted"] = "auto-replied"  # RFC 3834: their auto-replies stay quiet
    return Notice(ticket.requester, message)


def update(
    activity: TicketActivity, language: str, sender: str, engine_domain: str
) -> Notice | None:
    """The mail carrying an agent's update to the customer, or None when none is due."""
    data, ticket = activity.data, activity.data.ticket
    if data.activity is not ActivityType.CUSTOMER_INFORMED or ticket is None:
        return None
    if not data.message or data.informed_via not in (None, Channel.EMAIL):
        return None
    if not may_receive_mail(ticket.requester):
        return None
    serial = event_id("notice", activity.event_id).rpartition(":")[2]
    message_id = f"upd.{serial}.{ticket.ticket_id}@{engine_domain}"
    message = _mail(_UPDATE, language, ticket, sender, message_id, data.message)
    message["In-Reply-To"] = f"<ack.{ticket.ticket_id}@{engine_domain}>"
    message["References"] = f"<ack.{ticket.ticket_id}@{engine_domain}>"
    return Notice(ticket.requester, message, "update")


def _mail(
    templates: dict[str, tuple[str, str]],
    language: str,
    ticket: TicketState,
    sender: str,
    message_id: str,
    text: str = "",
) -> EmailMessage:
    subject_template, body_template = templates.get(language, templates["es"])
    fields = {
        "tag": ticket_tag(ticket.ticket_id),
        "ticket": ticket.ticket_id,
        "subject": base_subject(ticket.subject) or "-",
        "priority": ticket.priority.value,
        "cadence": _CADENCE.get(language, _CADENCE["es"])[ticket.priority],
        "message": text.strip(),
    }
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ticket.requester
    message["Subject"] = subject_template.format(**fields)
    # Deterministic: a replayed notice carries the same id, and replies to it thread back.
    message["Message-ID"] = f"<{message_id}>"
    message["X-Ticket-Id"] = ticket.ticket_id
    message.set_content(body_template.format(**fields))
    return message
