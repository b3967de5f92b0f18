"""Which ticket a mail belongs to, from its header section alone.

The SMTP ingestor works this out before its ``250`` (the mail is spooled under the ticket
id, and the reply names the ticket), so it must be cheap: the headers are split the
lenient ``compat32`` way and only Subject, Message-ID, In-Reply-To and References are
read. The mail parser takes the ticket id from the spool record, never works it out
again, so the two can never disagree.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header
from email.parser import BytesHeaderParser

from engine.contract.identity import email_ticket_id

_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True, slots=True)
class MailIdentity:
    ticket_id: str
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    sha256: str


def message_ids(value: str) -> tuple[str, ...]:
    """The ``<id>``s in a Message-ID, In-Reply-To or References value, without brackets."""
    return tuple(found.strip() for found in _MESSAGE_ID.findall(value))


def decode_unknown(data: bytes) -> str:
    """Bytes in an unknown or unsupported charset: UTF-8 when they are valid UTF-8, else
    Windows-1252 (a superset of ISO-8859-1 in practice, what such mail usually is)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def readable(text: str) -> str:
    """Text as it can travel in JSON: raw 8-bit bytes in a header (kept by the parser as
    lone surrogates) decoded like a body in an unknown charset."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return decode_unknown(text.encode("utf-8", "surrogateescape"))
    return text


def decode_words(raw: str) -> str:
    """A header's RFC 2047 encoded words decoded, each in its charset or, when that is
    unknown or wrong, as :func:`decode_unknown` reads it; whitespace runs as one space.
    A charset name with 8-bit bytes (kept as lone surrogates) or a NUL is an unknown one."""
    try:
        chunks = decode_header(raw)
    except (HeaderParseError, ValueError):
        return " ".join(readable(raw).split())
    decoded = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            decoded.append(readable(chunk))
            continue
        try:
            decoded.append(chunk.decode(charset or "ascii"))
        except (LookupError, ValueError):  # also a charset name with 8-bit bytes or a NUL
            decoded.append(decode_unknown(chunk))
    return " ".join("".join(decoded).split())


def header_section(raw: bytes) -> bytes:
    """The mail up to the blank line that ends its headers (all of it when there is none)."""
    end = _HEADER_END.search(raw)
    return raw if end is None else raw[: end.end()]


def mail_identity(raw: bytes) -> MailIdentity:
    """The ticket of a mail (``identity.email_ticket_id``) and the ids it was found by.
    Never raises: a header section that cannot be read leaves the mail identified by its
    content, as a mail without ids is."""
    digest = hashlib.sha256(raw).hexdigest()
    fields: dict[str, str] = {}
    try:
        headers = BytesHeaderParser(policy=policy.compat32).parsebytes(header_section(raw))
        for name, value in headers.raw_items():
            fields.setdefault(name.lower(), str(value))  # the first one, as Message.get
    except Exception:  # a header section no parser reads is a mail without ids
        fields = {}
    own = message_ids(fields.get("message-id", ""))
    replied = message_ids(fields.get("in-reply-to", ""))
    references = message_ids(fields.get("references", ""))
    message_id = readable(own[0]) if own else None
    in_reply_to = readable(replied[0]) if replied else None
    references = tuple(readable(reference) for reference in references)
    subject = decode_words(fields.get("subject", ""))
    return MailIdentity(
        ticket_id=email_ticket_id(subject, message_id, in_reply_to, references, digest),
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        sha256=digest,
    )
