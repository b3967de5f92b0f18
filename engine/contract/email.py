"""The e-mail family: a parsed mail and a spooled one."""

from __future__ import annotations

from pydantic import Field

from engine.contract.base import Record, SenderCheck, UtcDatetime
from engine.contract.ticket import TicketLink

RELAY_DESCRIPTION = (
    "Address of the trusted relay (ENGINE_SMTP_TRUSTED_RELAYS) that passed the mail on and "
    "named its original client, ``peer``, by XFORWARD; absent when the client came directly"
)


class Attachment(Record):
    filename: str | None
    content_type: str
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ForwardedMail(Record):
    """The original of a forwarded mail (attached as message/rfc822, or inline)."""

    from_address: str
    from_name: str
    subject: str
    date: str = Field(description="The original's date, as the forward shows it")
    text: str = Field(description="What the original says, without its own quoted history")


class EmailReceivedData(Record):
    ticket_id: str
    message_id: str | None = Field(description="Message-ID without angle brackets")
    in_reply_to: str | None
    references: tuple[str, ...]
    mail_from: str = Field(description="SMTP envelope sender (MAIL FROM)")
    rcpt_to: tuple[str, ...] = Field(min_length=1)
    from_address: str
    from_name: str
    cc: tuple[str, ...] = Field(
        default=(), description="The addresses in the Cc header, lower-cased, each once"
    )
    subject: str
    text: str = Field(description="The body as text; HTML-only mail converted to text")
    text_truncated: bool
    new_text: str = Field(
        description="What the sender just wrote: the text without quoted history or signature"
    )
    automated_reason: str | None = Field(
        description="Why the mail was sent by a machine (auto-reply, bounce, list); such "
        "mail never opens a ticket and is never answered"
    )
    date: UtcDatetime | None = Field(description="The Date header, when it parses")
    attachments: tuple[Attachment, ...]
    archived_sha256: str | None = Field(
        default=None,
        description="SHA-256 of the whole mail in the mail archive (ENGINE_SMTP_ARCHIVE_DIR)",
    )
    forwarded: ForwardedMail | None = Field(
        default=None, description="The forwarded original, when this mail forwards one"
    )
    peer: str = Field(description="Address of the SMTP client")
    relay: str | None = Field(default=None, description=RELAY_DESCRIPTION)
    size_bytes: int = Field(ge=0)
    failed_checks: tuple[SenderCheck, ...] = Field(
        default=(),
        description="The sender checks the relay stamped as failed (``Authentication-Results: "
        "... spf=fail``, ``dmarc=fail``, ``Received-SPF: fail``): the From may be forged, "
        "and the mail is never acknowledged",
    )
    linked_to: TicketLink | None = Field(
        default=None,
        description="Set by the processor when the mail named a ticket its sender may not "
        "join: the mail was put back under ``ticket_id``, a new ticket linked to that one",
    )


class EmailSpooledData(Record):
    ticket_id: str = Field(description="The ticket the mail belongs to, from its headers")
    mail_from: str = Field(description="SMTP envelope sender (MAIL FROM); empty for <>")
    rcpt_to: tuple[str, ...] = Field(min_length=1)
    peer: str = Field(description="Address of the SMTP client")
    relay: str | None = Field(default=None, description=RELAY_DESCRIPTION)
    size_bytes: int = Field(ge=0)
    sha256: str = Field(description="SHA-256 of the mail, hex")
    archived: bool = Field(description="Whether the mail is kept in ENGINE_SMTP_ARCHIVE_DIR")
    raw_base64: str = Field(description="The mail exactly as received, whole")
