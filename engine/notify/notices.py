"""Who is told what, and when: pure functions from records to outgoing mail.

The customer's side of a ticket is its requester, the parties (Cc of the opening mail,
added by activity) and the customer's notification contacts from the directory. An
acknowledgement goes out when a ticket opened by e-mail or by an SNMP alarm is first routed;
an update when the desk records a ``customer_informed`` activity with a message to be sent
by e-mail. Both reach the whole customer side (To the requester, Cc the others; an alarm has
no requester to write to, so To its contacts), in the customer's language, with the ticket
tag in the subject so the replies thread back, and the update cadence the support plan
promises for the ticket's priority (DOMAIN.md UPD-*).

The assignee is told of an ``assigned`` activity: an assignment notice, in English, and in
Spanish first when the agent speaks it.
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
from engine.contract.addresses import mailable_addresses, may_receive_mail
from engine.contract.identity import event_id, ticket_tag
from engine.ingest.mail.automated import base_subject
from engine.workers.agents import Agent

__all__ = [
    "Notice",
    "Recipients",
    "acknowledgement",
    "assignment",
    "customer_recipients",
    "echoed",
    "may_receive_mail",
    "one_line",
    "update",
]

Templates = dict[str, tuple[str, str]]
# How much of a sender's subject a notice repeats: enough to recognise it, too little to
# carry a spammer's message to whoever they forged as the sender.
MAX_ECHOED_CHARS = 120

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
_ACK: Templates = {
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
_ALARM_ACK: Templates = {
    "es": (
        "{tag} Detectamos una alarma en {device}: {alarm}",
        "Hola,\n\nDetectamos {alarm} en el equipo {device} y abrimos el ticket {ticket} con "
        "prioridad {priority}; {cadence}.\n\nPara agregar información, responda a este "
        "correo sin cambiar el asunto.\n\nMesa de soporte\n",
    ),
    "en": (
        "{tag} We detected an alarm on {device}: {alarm}",
        "Hello,\n\nWe detected {alarm} on device {device} and opened ticket {ticket} with "
        "priority {priority}; {cadence}.\n\nTo add information, reply to this e-mail "
        "without changing the subject.\n\nSupport desk\n",
    ),
}
_UPDATE_FOOTER = {
    "es": "{message}\n\n--\nTicket {ticket}, prioridad {priority}; {cadence}.\nPara agregar "
    "información, responda a este correo sin cambiar el asunto.\n",
    "en": "{message}\n\n--\nTicket {ticket}, priority {priority}; {cadence}.\nTo add "
    "information, reply to this e-mail without changing the subject.\n",
}
_UPDATE: Templates = {
    "es": ("{tag} Avance de su solicitud: {subject}", _UPDATE_FOOTER["es"]),
    "en": ("{tag} Update on your request: {subject}", _UPDATE_FOOTER["en"]),
}
_ALARM_UPDATE: Templates = {
    "es": ("{tag} Avance de la alarma en {device}: {alarm}", _UPDATE_FOOTER["es"]),
    "en": ("{tag} Update on the alarm on {device}: {alarm}", _UPDATE_FOOTER["en"]),
}
_ASSIGNMENT: Templates = {
    "es": (
        "Ticket {ticket} asignado a usted ({priority}, {tier}): {subject}",
        "Se le asignó el ticket {ticket}.\n\nPrioridad: {priority}\nNivel: {tier}\n"
        "Cliente: {customer}\nAsunto: {subject}\n{why}",
    ),
    "en": (
        "Ticket {ticket} assigned to you ({priority}, {tier}): {subject}",
        "Ticket {ticket} is assigned to you.\n\nPriority: {priority}\nTier: {tier}\n"
        "Customer: {customer}\nSubject: {subject}\n{why}",
    ),
}
_WHY = {"es": "\nPor qué:\n", "en": "\nWhy:\n"}
_UNKNOWN_CUSTOMER = {"es": "desconocido", "en": "unknown"}


@dataclass(frozen=True)
class Recipients:
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()


@dataclass(frozen=True)
class Notice:
    recipients: Recipients
    message: EmailMessage
    kind: str = "acknowledgement"

    @property
    def to(self) -> str:
        """Who the notice is for, as logs and dead letters name them."""
        return ", ".join((*self.recipients.to, *self.recipients.cc))


def customer_recipients(
    ticket: TicketState, contacts: tuple[str, ...], sender: str
) -> Recipients | None:
    """The customer's side of the ticket, each once whatever its case, never a mail system
    or the engine's own address: To the requester when mail reaches them, Cc the parties
    and the customer's notification contacts; To all of those when there is no requester
    to write to (an alarm). None: nobody can be told."""
    requester = mailable_addresses((ticket.requester,), excluding=(sender,))
    others = mailable_addresses((*ticket.parties, *contacts), excluding=(sender, *requester))
    if requester:
        return Recipients(requester, others)
    return Recipients(others) if others else None


def acknowledgement(
    routed: TicketRouted,
    language: str,
    sender: str,
    engine_domain: str,
    contacts: tuple[str, ...] = (),
) -> Notice | None:
    """The acknowledgement for a ticket's first routing, or None when none is due."""
    ticket = routed.data.ticket
    if ticket.channel not in (Channel.EMAIL, Channel.SNMP) or ticket.event_count != 1:
        return None
    recipients = customer_recipients(ticket, contacts, sender)
    if recipients is None:
        return None
    alarm = ticket.channel is Channel.SNMP
    message = _mail(
        _ALARM_ACK if alarm else _ACK,
        language,
        ticket,
        sender,
        recipients,
        f"ack.{ticket.ticket_id}@{engine_domain}",
    )
    # RFC 3834: their auto-replies stay quiet.
    message["Auto-Submitted"] = "auto-generated" if alarm else "auto-replied"
    return Notice(recipients, message)


def update(
    activity: TicketActivity,
    language: str,
    sender: str,
    engine_domain: str,
    contacts: tuple[str, ...] = (),
) -> Notice | None:
    """The mail carrying an agent's update to the customer, or None when none is due."""
    data, ticket = activity.data, activity.data.ticket
    if data.activity is not ActivityType.CUSTOMER_INFORMED or ticket is None:
        return None
    if not data.message or data.informed_via not in (None, Channel.EMAIL):
        return None
    recipients = customer_recipients(ticket, contacts, sender)
    if recipients is None:
        return None
    templates = _ALARM_UPDATE if ticket.channel is Channel.SNMP else _UPDATE
    message_id = f"upd.{_serial(activity)}.{ticket.ticket_id}@{engine_domain}"
    message = _mail(templates, language, ticket, sender, recipients, message_id, data.message)
    message["In-Reply-To"] = f"<ack.{ticket.ticket_id}@{engine_domain}>"
    message["References"] = f"<ack.{ticket.ticket_id}@{engine_domain}>"
    return Notice(recipients, message, "update")


def assignment(
    activity: TicketActivity, agent: Agent, sender: str, engine_domain: str
) -> Notice | None:
    """The notice telling an agent a ticket is theirs, or None when none is due."""
    data, ticket = activity.data, activity.data.ticket
    if data.activity is not ActivityType.ASSIGNED or ticket is None:
        return None
    if ticket.assignee != agent.id or not may_receive_mail(agent.email):
        return None
    languages = ("es", "en") if "es" in agent.languages else ("en",)
    texts = [_assignment_text(language, ticket, data.explanation) for language in languages]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = agent.email
    message["Subject"] = texts[0][0]
    message["Message-ID"] = f"<asg.{_serial(activity)}.{ticket.ticket_id}@{engine_domain}>"
    message["X-Ticket-Id"] = ticket.ticket_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n--\n\n".join(body for _, body in texts))
    return Notice(Recipients((agent.email,)), message, "assignment")


def _assignment_text(
    language: str, ticket: TicketState, explanation: tuple[str, ...]
) -> tuple[str, str]:
    subject_template, body_template = _ASSIGNMENT[language]
    why = "".join(f"- {line}\n" for line in explanation)
    fields = {
        "ticket": ticket.ticket_id,
        "priority": ticket.priority.value,
        "tier": ticket.tier.value,
        "subject": echoed(base_subject(ticket.subject)) or "-",
        "customer": one_line(_customer_name(ticket) or _UNKNOWN_CUSTOMER[language]),
        "why": _WHY[language] + why if why else "",
    }
    return subject_template.format(**fields), body_template.format(**fields)


def echoed(text: str, limit: int = MAX_ECHOED_CHARS) -> str:
    """A sender's text as a notice repeats it: on one line, at most ``limit`` characters
    (the last an ellipsis when cut), so a notice never carries a sender's long payload."""
    line = one_line(text)
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def one_line(text: str) -> str:
    """Text fit for a header field: each run of white space or line breaks (CR, LF, VT,
    FF, the separators U+001C-U+001F, NEL, U+2028, U+2029) one space, other control
    characters left out. The email package refuses a header value with a line break."""
    printable = "".join(char for char in text if char.isprintable() or char.isspace())
    return " ".join(printable.split())


def _customer_name(ticket: TicketState) -> str | None:
    if ticket.customer is not None:
        return ticket.customer.name or ticket.customer.customer_id
    return ticket.customer_id


def _serial(activity: TicketActivity) -> str:
    """Deterministic per activity: a replayed notice carries the same Message-ID."""
    return event_id("notice", activity.event_id).rpartition(":")[2]


def _mail(
    templates: Templates,
    language: str,
    ticket: TicketState,
    sender: str,
    recipients: Recipients,
    message_id: str,
    text: str = "",
) -> EmailMessage:
    subject_template, body_template = templates.get(language, templates["es"])
    device = ticket.requester  # an alarm's requester is its device
    fields = {
        "tag": ticket_tag(ticket.ticket_id),
        "ticket": ticket.ticket_id,
        "subject": echoed(base_subject(ticket.subject)) or "-",
        "device": echoed(device),
        "alarm": echoed(ticket.subject.removeprefix(f"{device}: ")) or "-",
        "priority": ticket.priority.value,
        "cadence": _CADENCE.get(language, _CADENCE["es"])[ticket.priority],
        "message": text.strip(),
    }
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients.to)
    if recipients.cc:
        message["Cc"] = ", ".join(recipients.cc)
    message["Subject"] = subject_template.format(**fields)
    # Deterministic: a replayed notice carries the same id, and replies to it thread back.
    message["Message-ID"] = f"<{message_id}>"
    message["X-Ticket-Id"] = ticket.ticket_id
    message.set_content(body_template.format(**fields))
    return message
