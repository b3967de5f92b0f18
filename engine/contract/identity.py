"""Ticket identity: a ticket id is derived from what the ticket is about, never random.

So a replay or a redelivery updates the same ticket instead of opening a second one.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid

TICKET_ID_PATTERN = r"T-[A-Z2-7]{13}"
_TICKET_TAG = re.compile(r"\[#(" + TICKET_ID_PATTERN + r")\]")
# The engine's own notices have Message-IDs <ack.T-...@domain> (acknowledgement) and
# <upd.N.T-...@domain> (updates): a reply to one is that ticket.
_NOTICE_ID = re.compile(r"^(?:ack|upd\.[0-9a-z-]+)\.(" + TICKET_ID_PATTERN + r")@")
_EVENT_NAMESPACE = uuid.UUID("8d6f5c1e-8e43-4d7a-9a57-3f1b0c0e7a11")


def ticket_id(kind: str, identity: str) -> str:
    """``T-`` and 13 base32 characters (65 bits) of a hash of the thing's identity."""
    digest = hashlib.sha256(f"{kind}\x00{identity}".encode()).digest()
    return "T-" + base64.b32encode(digest).decode()[:13]


def ticket_tag(ticket: str) -> str:
    """What the engine puts in subjects, so replies find their ticket."""
    return f"[#{ticket}]"


def ticket_id_in_subject(subject: str) -> str | None:
    match = _TICKET_TAG.search(subject)
    return match.group(1) if match else None


def ticket_named_by_mail(
    subject: str, in_reply_to: str | None, references: tuple[str, ...]
) -> str | None:
    """The ticket a mail names by the engine's own id: the ``[#T-…]`` tag in its subject,
    else a reply to one of the engine's notices. Anyone who saw a notice can name it."""
    tagged = ticket_id_in_subject(subject)
    if tagged:
        return tagged
    for known in (*references, in_reply_to):
        notice = _NOTICE_ID.match(known or "")
        if notice:
            return notice.group(1)
    return None


def linked_ticket_id(referenced: str, sender: str, thread: str) -> str:
    """The ticket a mail opens when its sender may not join the ticket it names: one per
    referenced ticket, sender and thread, so a redelivery or the sender's next mail in
    the same thread finds it again."""
    return ticket_id("email-linked", f"{referenced}\x00{sender.lower()}\x00{thread}")


def email_thread_root(
    message_id: str | None, in_reply_to: str | None, references: tuple[str, ...]
) -> str | None:
    """The Message-ID that started the thread: first of References, else In-Reply-To,
    else the message's own id."""
    if references:
        return references[0]
    return in_reply_to or message_id


def email_ticket_id(
    subject: str,
    message_id: str | None,
    in_reply_to: str | None,
    references: tuple[str, ...],
    content_digest: str,
) -> str:
    """Ticket tag in the subject first, then a reply to one of the engine's notices, then
    the thread's root Message-ID; a mail with no ids at all is identified by its content,
    so its own redelivery still finds it."""
    named = ticket_named_by_mail(subject, in_reply_to, references)
    if named:
        return named
    root = email_thread_root(message_id, in_reply_to, references)
    if root:
        return ticket_id("email", root.lower())
    return ticket_id("email-content", content_digest)


def chat_ticket_id(conversation_id: str) -> str:
    """Every message of one chat conversation belongs to one ticket."""
    return ticket_id("chat", conversation_id)


def phone_ticket_id(call_id: str) -> str:
    return ticket_id("phone", call_id)


def event_id(source: str, identity: str) -> str:
    """A deterministic event id: the same source fact always gets the same id."""
    return f"{source}:{_uuid5_text(identity)}"


def _uuid5_text(name: str) -> str:
    """``str(uuid.uuid5(_EVENT_NAMESPACE, name))`` without building a UUID object: the
    processor derives three ids an event, and the object cost more than the hash."""
    digest = bytearray(hashlib.sha1(_EVENT_NAMESPACE.bytes + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
