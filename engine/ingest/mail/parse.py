"""parse_email(raw, ...) -> EmailReceived: one received mail as a ticket event.

Pure, and lenient as mail demands: ``policy=default`` parsing, every header read
defensively, the text body preferred over HTML. Whatever still fails raises
``EmailParseError`` naming the part that failed, and the caller dead-letters the raw mail.

Bounded, whatever the mail (docs/security.md): the HTML-to-text conversion is linear; a
structured header field (addresses, Content-Type, ...) over ``MAX_STRUCTURED_HEADER_CHARS``
is not given to the email package, whose parse of such fields grows with the square of
their length (CPython gh-87075); a mail over ``MAX_MAIL_BYTES`` or with more than
``MAX_MIME_PARTS`` parts is refused, and so is one whose parse runs past its budget
(``PARSE_BUDGET_SECONDS``): each raises ``EmailParseError`` with the reason.
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
import time
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime
from email import errors, policy
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from engine.contract import Attachment, EmailReceived, EmailReceivedData, ForwardedMail
from engine.contract.identity import event_id
from engine.contract.topics import MAX_SPOOLED_MAIL_BYTES
from engine.errors import EngineError
from engine.ingest.mail.authentication import failed_checks
from engine.ingest.mail.automated import automated_reason, inline_forward, split_reply
from engine.ingest.mail.identity import (
    MailIdentity,
    decode_unknown,
    decode_words,
    mail_identity,
    readable,
)
from engine.ingest.mail.xforward import SmtpClient

MAX_TEXT_CHARS = 200_000
# Work on one mail is bounded (docs/security.md). A real mail's structured header fields
# are far shorter (a boundary is at most 70 characters; an RFC 2231 file name of 255
# bytes, percent-encoded, about 800); From and Cc over it are read from their raw text.
MAX_STRUCTURED_HEADER_CHARS = 2_000
MAX_MIME_PARTS = 1_000
MAX_MAIL_BYTES = MAX_SPOOLED_MAIL_BYTES
# An ordinary mail of the largest size parses in about a second; this budget is for the
# mail no bound above foresaw. It is checked whenever a header field is parsed.
PARSE_BUDGET_SECONDS = 10.0
_DEADLINE: ContextVar[float] = ContextVar("mail_parse_deadline", default=float("inf"))
MAX_CC = 50  # a ticket's parties are people, not a mailing list
# What getaddresses raises on an address field it cannot read: RecursionError for comments
# nested deeper than the stack (it recurses once per "(").
_ADDRESS_ERRORS = (IndexError, ValueError, RecursionError)
AUTOMATION_HEADERS = (
    "auto-submitted", "precedence", "x-autoreply", "x-autorespond",
    "x-auto-response-suppress", "list-id",
)  # fmt: skip
# HTML to text: tags become nothing, block ends a line break, scripts and styles vanish.
# Each pattern ends at a ">", and is only ever tried where one follows (see html_to_text):
# tried where none does, every "<" would scan to the end of the text, and a body of
# repeated "<p" or "<script" would take time growing with the square of its length.
_TAGS = re.compile(r"<[^>]+>")
_BLOCK_END = re.compile(r"</?(p|div|br|tr|li|h[1-6])\b[^>]*>", re.IGNORECASE)
_CODE_START = re.compile(r"<(script|style)\b", re.IGNORECASE)
_CODE_END = {
    "script": re.compile(r"</script>", re.IGNORECASE),
    "style": re.compile(r"</style>", re.IGNORECASE),
}


class EmailParseError(EngineError, ValueError):
    """A mail this parser cannot read, naming the part that failed. Also a ValueError:
    callers of a parser catch bad input as one, and their ``except ValueError`` keeps
    catching it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ParseBudgetError(EmailParseError):
    """The mail's parse ran past its budget, or the mail is over a size bound. Never
    caught inside the parser: it ends the parse."""


def _check_budget() -> None:
    if time.monotonic() >= _DEADLINE.get():
        raise ParseBudgetError(
            "message", f"parsing took over its budget of {PARSE_BUDGET_SECONDS:g} s"
        )


class _RememberingHeaderRegistry(HeaderRegistry):
    """policy.default's header parsing, remembered by (name, value) for short values.

    ``EmailMessage`` parses a header again on every read, and reading one mail asks for
    its Content-Type about ten times; header objects are immutable, so one parse serves
    them all (and the next mail with the same header)."""

    REMEMBERED_VALUE_CHARS = 512

    def __init__(self) -> None:
        super().__init__()
        self._remembered = functools.lru_cache(maxsize=4096)(super().__call__)
        self._classes = functools.lru_cache(maxsize=256)(super().__getitem__)

    def __getitem__(self, name: str) -> type[BaseHeader]:
        # HeaderRegistry builds a new class for every header it parses; one per name will do.
        return self._classes(name)

    def __call__(self, name: str, value: str) -> BaseHeader:
        _check_budget()
        if len(value) > MAX_STRUCTURED_HEADER_CHARS and not issubclass(
            self[name], UnstructuredHeader
        ):
            raise EmailParseError(
                f"header {name}",
                f"{len(value):,} characters, over the {MAX_STRUCTURED_HEADER_CHARS:,} "
                "a structured header field may have",
            )
        if len(value) > self.REMEMBERED_VALUE_CHARS:
            return super().__call__(name, value)
        return self._remembered(name, value)


class _ReceivedMessage(EmailMessage):
    """A received message, read but never changed: its content type is worked out once
    (reading a mail asks for it about ten times, each a scan of the headers)."""

    _content_type: str | None = None

    def get_content_type(self) -> str:
        if self._content_type is None:
            self._content_type = super().get_content_type()
        return self._content_type

    def set_default_type(self, ctype: str) -> None:
        self._content_type = None
        super().set_default_type(ctype)


PARSE_POLICY = policy.default.clone(
    header_factory=_RememberingHeaderRegistry(), message_factory=_ReceivedMessage
)
# A forwarded message written back as it came: its header fields not folded again (the
# email package's folding of a MIME parameter whose name fills a line never ends).
_AS_RECEIVED = PARSE_POLICY.clone(refold_source="none", cte_type="8bit")


def _header(message: EmailMessage, name: str) -> str:
    """The header's decoded value; its raw text when the structured parse fails."""
    try:
        value = message.get(name)
        return readable(str(value).strip()) if value is not None else ""
    except ParseBudgetError:
        raise
    except Exception:  # header parsers raise HeaderParseError, IndexError, ValueError...
        raw = next((v for k, v in message.raw_items() if k.lower() == name.lower()), "")
        return readable(" ".join(str(raw).split()))


def _raw_fields(message: EmailMessage, name: str) -> list[str]:
    """Every field of that name, as written (no parse)."""
    return [str(value) for key, value in message.raw_items() if key.lower() == name.lower()]


def _sender(message: EmailMessage) -> tuple[str, str]:
    raw = _header(message, "From")
    try:
        pairs = getaddresses([raw])
    except _ADDRESS_ERRORS:
        return "", raw
    name, address = pairs[0] if pairs else ("", "")
    return one_address(address), name.strip()


def one_address(address: str) -> str:
    """The address lower-cased, or "" when it holds white space or a control character
    (a line break inside would become the requester, and a header no notice can carry)."""
    address = address.strip().lower()
    if any(char.isspace() or not char.isprintable() for char in address):
        return ""
    return address


def _cc(message: EmailMessage) -> tuple[str, ...]:
    """The addresses in the Cc header, lower-cased, each once (at most ``MAX_CC``); a name
    without an address is left out."""
    raw = _header(message, "Cc")
    try:
        pairs = getaddresses([raw]) if raw else []
    except _ADDRESS_ERRORS:
        return ()
    found = dict.fromkeys(address.strip().lower() for _, address in pairs if "@" in address)
    return tuple(found)[:MAX_CC]


def _date(message: EmailMessage) -> datetime | None:
    raw = _header(message, "Date")
    if not raw:
        return None
    try:
        parsed = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):  # Overflow: a huge number
        return None
    return parsed if parsed.tzinfo is not None else None


def html_to_text(markup: str) -> str:
    """The text a reader sees of an HTML body, one line per block. Takes time in
    proportion to the markup's length, whatever the markup."""
    with_breaks = _before_last_tag_end(_BLOCK_END, "\n", _without_code(markup))
    text = html.unescape(_before_last_tag_end(_TAGS, "", with_breaks))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def _before_last_tag_end(pattern: re.Pattern[str], replacement: str, text: str) -> str:
    """``pattern.sub(replacement, text)`` for a pattern that ends at the next ">": nothing
    after the last ">" can match, so it is not searched (where every try would fail
    only at the end of the text)."""
    end = text.rfind(">") + 1
    return pattern.sub(replacement, text[:end]) + text[end:]


def _without_code(markup: str) -> str:
    """The markup with each ``<script ...</script>`` and ``<style ...</style>`` replaced
    by a space. A kind found unclosed once is not looked for again: no later one can be
    closed either."""
    kept: list[str] = []
    done = searched = 0
    unclosed: set[str] = set()
    while len(unclosed) < len(_CODE_END):
        start = _CODE_START.search(markup, searched)
        if start is None:
            break
        kind = start.group(1).lower()
        end = None if kind in unclosed else _CODE_END[kind].search(markup, start.end())
        if end is None:
            unclosed.add(kind)
            searched = start.start() + 1
            continue
        kept += (markup[done : start.start()], " ")
        done = searched = end.end()
    kept.append(markup[done:])
    return "".join(kept)


def _body(message: EmailMessage) -> MIMEPart | None:
    try:
        return message.get_body(preferencelist=("plain", "html"))
    except EmailParseError:  # a bound, or a refused header field
        raise
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        # AttributeError: a multipart/related without its boundary, whose text get_body
        # takes for a list of parts
        raise EmailParseError("body", f"cannot find the text part: {error}") from error


def _text(message: EmailMessage) -> str:
    body = _body(message)
    if body is None:
        return _unstructured_text(message)
    try:
        if body.get_param("charset") is None and body.get_content_maintype() == "text":
            raise LookupError("no charset declared")  # RFC 2045 says ASCII; mail says otherwise
        content = body.get_content()
    except EmailParseError:  # a bound, or a refused header field
        raise
    except (LookupError, ValueError, AssertionError, TypeError):
        payload = body.get_payload(decode=True)
        content = decode_unknown(payload) if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    if body.get_content_subtype() == "html":
        return html_to_text(content)
    return content.strip()


def _unstructured_text(message: EmailMessage) -> str:
    """The text of a "multipart" whose parts cannot be found (no boundary declared): what
    the sender wrote is still there, as plain text, read from its bytes (``get_payload()``
    would have decoded 8-bit text as ASCII, each such byte a replacement character)."""
    if message.get_content_maintype() != "multipart" or message.is_multipart():
        return ""
    payload = message.get_payload(decode=True)
    return decode_unknown(payload).strip() if isinstance(payload, bytes) else ""


_BOUNDARY_LINE = re.compile(r"^--([^\s]{1,70}?)(--)?[ \t]*\r?$", re.MULTILINE)


def _with_boundary_found(message: EmailMessage, raw: bytes) -> EmailMessage:
    """A multipart whose declared boundary never occurs, parsed again with the boundary
    its parts do use (senders that rewrite one and not the other); else as it was."""
    if not any(isinstance(d, errors.StartBoundaryNotFoundDefect) for d in message.defects):
        return message
    declared = message.get_param("boundary")
    payload = message.get_payload()
    if not isinstance(declared, str) or not declared or not isinstance(payload, str):
        return message
    used = _BOUNDARY_LINE.search(payload)
    if used is None:
        return message
    fixed = raw.replace(declared.encode(), used.group(1).encode(), 1)
    reparsed = BytesParser(policy=PARSE_POLICY).parsebytes(fixed)
    return reparsed if isinstance(reparsed, EmailMessage) and reparsed.is_multipart() else message


def _subject(message: EmailMessage) -> str:
    """The Subject, decoded; encoded words in an unknown charset decoded like bodies are."""
    subject = " ".join(_header(message, "Subject").split())
    if "\ufffd" not in subject:
        return subject
    raw = next((str(v) for k, v in message.raw_items() if k.lower() == "subject"), "")
    return decode_words(raw)


def _mostly_text(text: str) -> bool:
    """Whether decoded bytes read as text: nine in ten characters printable, few that could
    not be decoded."""
    if not text.strip():
        return False
    printable = sum(
        1 for char in text if (char.isprintable() or char.isspace()) and char != "\ufffd"
    )
    return printable >= 0.9 * len(text)


def _part_bytes(part: MIMEPart) -> bytes:
    if part.get_content_maintype() == "message":
        inner = part.get_payload()
        first = inner[0] if isinstance(inner, list) and inner else inner
        try:
            return first.as_bytes(policy=_AS_RECEIVED) if isinstance(first, EmailMessage) else b""
        except EmailParseError:  # a bound, or a refused header field
            raise
        except (LookupError, ValueError, TypeError):
            return b""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _attached_original(message: EmailMessage) -> EmailMessage | None:
    for part in message.iter_attachments():
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            first = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(first, EmailMessage):
                return first
    return None


def _forwarded(message: EmailMessage, text: str, subject: str) -> tuple[ForwardedMail | None, str]:
    """(the forwarded original, the forwarder's own note) of a mail; (None, "") if none."""
    attached = _attached_original(message)
    if attached is not None:
        address, name = _sender(attached)
        original = ForwardedMail(
            from_address=address,
            from_name=name,
            subject=" ".join(_header(attached, "Subject").split()),
            date=_header(attached, "Date"),
            text=split_reply(_text(attached))[0][:MAX_TEXT_CHARS],
        )
        return original, split_reply(text)[0]
    inline = inline_forward(text, subject)
    if inline is None:
        return None, ""
    try:
        pairs = getaddresses([inline.headers["from"]])
    except _ADDRESS_ERRORS:
        pairs = []
    name, address = pairs[0] if pairs else ("", "")
    original = ForwardedMail(
        from_address=address.strip().lower(),
        from_name=name.strip() or inline.headers["from"],
        subject=inline.headers.get("subject", ""),
        date=inline.headers.get("date", ""),
        text=split_reply(inline.text)[0][:MAX_TEXT_CHARS],
    )
    return original, split_reply(inline.note)[0]


def _leaves(part: MIMEPart) -> Iterator[MIMEPart]:
    """The parts that hold content, in order; a forwarded message is one leaf."""
    payload = part.get_payload()
    if part.get_content_maintype() == "multipart" and isinstance(payload, list):
        for child in payload:
            if isinstance(child, MIMEPart):
                yield from _leaves(child)
    else:
        yield part


def _is_body_text(part: MIMEPart) -> bool:
    """A text part without a name that is not marked as an attachment: the body or one of
    its alternatives, not a file."""
    return (
        part.get_content_type() in ("text/plain", "text/html")
        and not part.get_filename()
        and not part.is_attachment()
    )


def _attachments(message: EmailMessage) -> tuple[Attachment, ...]:
    """Every part that is not the text the sender wrote: files, inline images (pasted
    screenshots in multipart/related), forwarded messages."""
    if not message.is_multipart():
        return ()
    found = []
    for part in _leaves(message):
        if _is_body_text(part):
            continue
        data = _part_bytes(part)
        found.append(
            Attachment(
                filename=part.get_filename(),
                content_type=part.get_content_type(),
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    return tuple(found)


def parse_email(
    raw: bytes,
    *,
    mail_from: str,
    rcpt_to: tuple[str, ...],
    peer: str,
    received_at: datetime,
    source: str,
    identity: MailIdentity | None = None,
    archived: bool = False,
    relay: str | None = None,
    budget_seconds: float = PARSE_BUDGET_SECONDS,
) -> EmailReceived:
    """The mail's ``email.received`` event. Its ticket is ``identity``'s (the one the
    ingestor spooled the mail under), else worked out from the mail's headers. Raises
    ``EmailParseError`` for a mail it cannot read, ``ParseBudgetError`` for one over a
    bound or past ``budget_seconds``."""
    if len(raw) > MAX_MAIL_BYTES:
        raise ParseBudgetError(
            "message", f"{len(raw):,} bytes, over the {MAX_MAIL_BYTES:,} a mail may have"
        )
    deadline = _DEADLINE.set(time.monotonic() + budget_seconds)
    try:
        event = _parse_email(
            raw,
            mail_from,
            rcpt_to,
            SmtpClient(peer, relay),
            received_at,
            source,
            identity,
            archived,
        )
        _check_budget()
        return event
    finally:
        _DEADLINE.reset(deadline)


def _parse_email(
    raw: bytes,
    mail_from: str,
    rcpt_to: tuple[str, ...],
    client: SmtpClient,
    received_at: datetime,
    source: str,
    identity: MailIdentity | None,
    archived: bool,
) -> EmailReceived:
    identity = identity or mail_identity(raw)
    try:
        message = BytesParser(policy=PARSE_POLICY).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        message = _with_boundary_found(message, raw)
    except EmailParseError:  # a bound, or a header field refused (_RememberingHeaderRegistry)
        raise
    except Exception as error:  # the parser's failures have no common base class
        raise EmailParseError("message", f"not parseable as MIME: {error}") from error
    assert isinstance(message, EmailMessage)
    parts = sum(1 for _ in message.walk())
    if parts > MAX_MIME_PARTS:
        raise ParseBudgetError(
            "message", f"{parts:,} MIME parts, over the {MAX_MIME_PARTS:,} a mail may have"
        )

    subject = _subject(message)
    from_address, from_name = _sender(message)
    if not from_address:
        from_address = one_address(mail_from)
    text = _text(message)
    if not message.keys() and not _mostly_text(text):
        raise EmailParseError("message", "not a mail: no header fields and no readable text")
    forwarded, note = _forwarded(message, text, subject)
    if forwarded is None:
        new_text, _quoted = split_reply(text)
    else:  # what the forwarder says, then what the original asked: both are the request
        new_text = "\n\n".join(part for part in (note, forwarded.subject, forwarded.text) if part)
    automated = automated_reason(
        message,
        mail_from,
        {name: _header(message, name) for name in AUTOMATION_HEADERS},
    )
    try:
        attachments = _attachments(message)
    except EmailParseError:  # a bound, or a refused header field
        raise
    except Exception as error:  # a broken part must not hide the rest of the mail
        raise EmailParseError("attachments", str(error)) from error
    return EmailReceived(
        event_id=event_id("email", identity.message_id or f"sha256:{identity.sha256}"),
        occurred_at=received_at,
        source=source,
        data=EmailReceivedData(
            ticket_id=identity.ticket_id,
            message_id=identity.message_id,
            in_reply_to=identity.in_reply_to,
            references=identity.references,
            mail_from=mail_from,
            rcpt_to=rcpt_to,
            from_address=from_address,
            from_name=from_name,
            cc=_cc(message),
            subject=subject,
            text=text[:MAX_TEXT_CHARS],
            text_truncated=len(text) > MAX_TEXT_CHARS,
            new_text=new_text[:MAX_TEXT_CHARS],
            automated_reason=automated,
            date=_date(message),
            attachments=attachments,
            archived_sha256=identity.sha256 if archived else None,
            forwarded=forwarded,
            failed_checks=failed_checks(
                _raw_fields(message, "Authentication-Results"),
                _raw_fields(message, "Received-SPF"),
            ),
            peer=client.address,
            relay=client.relay,
            size_bytes=len(raw),
        ),
    )
