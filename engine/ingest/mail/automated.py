"""What a received mail is, before it becomes a ticket: automated or not, and which of
its text is new. Pure functions over a parsed message."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage

# RFC 3834 auto-replies, bulk and list mail, bounces: never a ticket, never answered.
_PRECEDENCE_AUTOMATED = {"bulk", "junk", "list", "auto_reply"}
_DAEMON_LOCAL_PARTS = {"mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply"}

_REPLY_HEADER = re.compile(
    r"^\s*("
    r"on .{1,200}wrote:|"  # On Mon, 1 Jan 2026, Ana <a@b> wrote:
    r"el .{1,200}escribi[oó]:|"  # El lun, 1 ene 2026, Ana <a@b> escribió:
    r"am .{1,200}schrieb .{0,100}:|"
    r"-{2,}\s*(original message|mensaje original|forwarded message|mensaje reenviado)\s*-{2,}|"
    r"_{10,}|"  # Outlook's rule before the quoted headers
    r"(from|de):\s.+"  # Outlook: "De: Soporte" followed by "Enviado:"/"Sent:"
    r")\s*$",
    re.IGNORECASE,
)
_OUTLOOK_NEXT = re.compile(r"^\s*(sent|enviado|date|fecha|to|para):\s", re.IGNORECASE)
_SIGNATURE = re.compile(
    r"^\s*(--\s?|sent from my .+|enviado desde mi .+|get outlook for .+|obtener outlook para .+)$",
    re.IGNORECASE,
)


# Header limits: generous for real mail (long Received chains, DKIM), fatal to abuse.
MAX_HEADER_BYTES = 256 * 1024
MAX_HEADER_FIELDS = 1000
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def header_problem(raw: bytes) -> str | None:
    """Why the mail's header section is over the limits, or None."""
    end = _HEADER_END.search(raw)
    section = raw[: end.start()] if end else raw
    if len(section) > MAX_HEADER_BYTES:
        return f"header section of {len(section)} bytes (limit {MAX_HEADER_BYTES})"
    fields = sum(1 for line in section.splitlines() if line and line[:1] not in b" \t")
    if fields > MAX_HEADER_FIELDS:
        return f"{fields} header fields (limit {MAX_HEADER_FIELDS})"
    return None


def automated_reason(message: EmailMessage, mail_from: str, headers: dict[str, str]) -> str | None:
    """Why this mail was sent by a machine (auto-reply, bounce, list), or None.

    ``headers`` holds the decoded values of the headers read (lowercase names)."""
    auto_submitted = headers.get("auto-submitted", "").strip().lower()
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in _PRECEDENCE_AUTOMATED:
        return f"Precedence: {precedence}"
    for name in ("x-autoreply", "x-autorespond", "x-auto-response-suppress", "list-id"):
        if headers.get(name, "").strip():
            return f"{name} header present"
    if not mail_from.strip():
        return "null sender <> (a bounce or notification)"
    local_part = mail_from.rpartition("@")[0].strip().lower()
    if local_part in _DAEMON_LOCAL_PARTS:
        return f"sender {local_part} is a mail system"
    if message.get_content_type() == "multipart/report":
        return "delivery or disposition report"
    return None


_SIGN_OFF = re.compile(
    r"^\s*(thanks|thank you|many thanks|regards|best regards|kind regards|best|cheers|"
    r"saludos|un saludo|saludos cordiales|gracias|muchas gracias|atentamente|cordialmente|"
    r"quedo atento|quedo atenta|quedo al pendiente)\b[\s,.!]*$",
    re.IGNORECASE,
)
_NAME = re.compile(r"^\s*[A-ZÁÉÍÓÚÑ][\w.'-]*(\s+[A-ZÁÉÍÓÚÑ][\w.'-]*){0,3}\s*$")
_SIGNATURE_MAX_LINES = 4
_SIGNATURE_MAX_CHARS = 60


def without_sign_off(text: str) -> str:
    """The text without its closing: a sign-off line ("Thanks,", "Saludos") and the
    few short lines after it, or a last short paragraph that starts with a name
    ("Dana Price / Team lead, BPO Partner"). Names and job titles are not the request."""
    lines = text.rstrip().splitlines()
    for index in range(max(0, len(lines) - _SIGNATURE_MAX_LINES - 1), len(lines)):
        if _SIGN_OFF.match(lines[index]) and index > 0:
            return "\n".join(lines[:index]).rstrip()
    blank = max((i for i, line in enumerate(lines) if not line.strip()), default=-1)
    closing = lines[blank + 1 :]
    if (
        blank > 0
        and len(closing) <= _SIGNATURE_MAX_LINES
        and all(len(line) <= _SIGNATURE_MAX_CHARS for line in closing)
        and _NAME.match(closing[0])
        and not closing[0].rstrip().endswith((".", "?", "!", ":"))
    ):
        return "\n".join(lines[:blank]).rstrip()
    return text.strip()


def split_reply(text: str) -> tuple[str, str]:
    """(new text, quoted history and signature) of a message body.

    Cuts at the first reply header ("On ... wrote:", "El ... escribió:", Outlook's
    "De:/Enviado:" block, "--- Original Message ---"), at a signature ("-- ", "Sent from
    my ..."), or where only ">"-quoted lines remain."""
    lines = text.splitlines()
    cut = len(lines)
    for index, line in enumerate(lines):
        if _SIGNATURE.match(line):
            cut = index
            break
        if _REPLY_HEADER.match(line):
            if line.strip().lower().startswith(("from:", "de:")):
                following = lines[index + 1] if index + 1 < len(lines) else ""
                if not _OUTLOOK_NEXT.match(following):
                    continue
            cut = index
            break
    while cut > 0 and (lines[cut - 1].startswith(">") or not lines[cut - 1].strip()):
        cut -= 1
    new_lines = [line for line in lines[:cut] if not line.startswith(">")]
    return without_sign_off("\n".join(new_lines)), "\n".join(lines[cut:]).strip()


_FORWARD_MARKER = re.compile(
    r"^\s*(-{2,}\s*(forwarded message|mensaje reenviado|original message|mensaje original)"
    r"\s*-{2,}|begin forwarded message:|inicio del mensaje reenviado:)\s*$",
    re.IGNORECASE,
)
_FORWARD_HEADER = re.compile(
    r"^\s*(from|de|subject|asunto|date|fecha|sent|enviado|to|para|cc)\s*:\s*(.*)$", re.IGNORECASE
)
_FORWARD_PREFIX = re.compile(r"^\s*(fw|fwd|rv|enc|tr|wg)\s*(\[\d+\])?\s*:", re.IGNORECASE)
_FIELD_NAMES = {
    "from": "from", "de": "from", "subject": "subject", "asunto": "subject",
    "date": "date", "fecha": "date", "sent": "date", "enviado": "date",
}  # fmt: skip


@dataclass(frozen=True)
class InlineForward:
    """A message forwarded in the body: the forwarder's note, the original's headers, text."""

    note: str
    headers: dict[str, str]
    text: str


def is_forward_subject(subject: str) -> bool:
    """ "Fwd:", "FW:", "RV:" (reenviado), "ENC:" (encaminhado), "TR:", "WG:" lead the subject."""
    return bool(_FORWARD_PREFIX.match(subject))


def inline_forward(text: str, subject: str) -> InlineForward | None:
    """The message forwarded inline in ``text``, or None.

    Found at a forward marker ("---------- Forwarded message ---------", "Begin forwarded
    message:", "Mensaje reenviado"), or, when the subject says it is a forward, at an
    Outlook "De:/Enviado:" block; the header lines up to the first blank line are the
    original's, what follows is its text."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if _FORWARD_MARKER.match(line):
            start = index + 1
        elif is_forward_subject(subject) and _outlook_block(lines, index):
            start = index
        else:
            continue
        headers: dict[str, str] = {}
        end = start
        while end < len(lines) and lines[end].strip():
            header = _FORWARD_HEADER.match(lines[end])
            if header is None:
                break
            field = _FIELD_NAMES.get(header.group(1).lower())
            if field and field not in headers:
                headers[field] = header.group(2).strip()
            end += 1
        if "from" not in headers:
            continue
        note = "\n".join(lines[:index]).strip()
        return InlineForward(note, headers, "\n".join(lines[end:]).strip())
    return None


def _outlook_block(lines: list[str], index: int) -> bool:
    if not re.match(r"^\s*(from|de):\s", lines[index], re.IGNORECASE):
        return False
    following = lines[index + 1] if index + 1 < len(lines) else ""
    return bool(_OUTLOOK_NEXT.match(following))


_SUBJECT_PREFIX = re.compile(
    r"^\s*((re|rv|aw|fw|fwd|tr|wg|enc|r)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE
)


def base_subject(subject: str) -> str:
    """The subject without reply and forward prefixes: "RE: RV: Fwd: Caída" -> "Caída"."""
    return _SUBJECT_PREFIX.sub("", subject).strip()
