"""The mail spool: what the SMTP ingestor stores before its ``250``, and what the mail
parser makes of it.

A mail is spooled whole (``email.spooled`` on ``mail.spool.v1``) under the ticket its
headers name; reading it into an ``email.received`` event, or keeping it as a dead letter
with the reason, happens downstream, off the path of the sender's reply (decision 0040).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from datetime import datetime

from pydantic import ValidationError

from engine.contract import (
    EmailReceived,
    EmailSpooled,
    EmailSpooledData,
    RecordDeadLettered,
    RecordLocation,
    parse_record,
    record_location,
)
from engine.contract.identity import event_id
from engine.contract.topics import MAIL_SPOOL
from engine.ingest.mail.identity import MailIdentity, mail_identity
from engine.ingest.mail.parse import EmailParseError, parse_email
from engine.kafka.deadletter import dead_letter

SMTP_ORIGIN = "smtp"


def spooled_mail(
    raw: bytes,
    identity: MailIdentity,
    *,
    mail_from: str,
    rcpt_to: tuple[str, ...],
    peer: str,
    received_at: datetime,
    source: str,
    archived: bool,
    relay: str | None = None,
) -> EmailSpooled:
    return EmailSpooled(
        event_id=event_id("email.spooled", f"sha256:{identity.sha256}"),
        occurred_at=received_at,
        source=source,
        data=EmailSpooledData(
            ticket_id=identity.ticket_id,
            mail_from=mail_from,
            rcpt_to=rcpt_to,
            peer=peer,
            relay=relay,
            size_bytes=len(raw),
            sha256=identity.sha256,
            archived=archived,
            raw_base64=base64.b64encode(raw).decode("ascii"),
        ),
    )


def read_spooled(
    value: bytes, now: datetime, original: RecordLocation | None = None
) -> EmailReceived | RecordDeadLettered:
    """One spool record (at ``original`` on the spool, when known) as the mail's
    ``email.received`` event, or as a dead letter that keeps the mail (or the record, when
    it holds no mail) with the reason: whole, or truncated and pointing at ``original``."""
    try:
        record = parse_record(value)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in record_location(tuple(first["loc"])))
        return _not_a_spooled_mail(
            value, f"invalid spool record: {first['msg']}", field, now, original
        )
    if not isinstance(record, EmailSpooled):
        return _not_a_spooled_mail(
            value, f"{record.kind} is not a spooled mail", "kind", now, original
        )
    spooled = record.data
    try:
        raw = base64.b64decode(spooled.raw_base64, validate=True)
    except binascii.Error as error:
        return _not_a_spooled_mail(
            value, f"mail is not base64: {error}", "data.raw_base64", now, original
        )
    identity = mail_identity(raw)
    if identity.sha256 != spooled.sha256:
        return _not_a_spooled_mail(
            value, "mail does not match its SHA-256", "data.sha256", now, original
        )
    try:
        return parse_email(
            raw,
            mail_from=spooled.mail_from,
            rcpt_to=spooled.rcpt_to,
            peer=spooled.peer,
            received_at=record.occurred_at,
            source=record.source,
            identity=_spooled_under(identity, spooled.ticket_id),
            archived=spooled.archived,
            relay=spooled.relay,
        )
    except EmailParseError as error:
        reason, field = error.reason, error.field
    except Exception as error:  # whatever a mail does to the parser, the mail is kept
        reason, field = f"{type(error).__name__}: {error}", "message"
    return dead_letter(
        raw,
        reason=f"mail could not be parsed: {reason}",
        field=field,
        origin=SMTP_ORIGIN,
        source=record.source,
        now=record.occurred_at,
        original=original,
    )


def _spooled_under(identity: MailIdentity, ticket_id: str) -> MailIdentity:
    """The spool record's ticket wins: it is the one the sender was told."""
    return dataclasses.replace(identity, ticket_id=ticket_id)


def _not_a_spooled_mail(
    value: bytes,
    reason: str,
    field: str | None,
    now: datetime,
    original: RecordLocation | None,
) -> RecordDeadLettered:
    return dead_letter(
        value, reason=reason, field=field, origin=MAIL_SPOOL, source="mail-parser", now=now,
        original=original,
    )  # fmt: skip
