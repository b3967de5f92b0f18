"""The mail parser and ``mail_identity``, on whole raw mails."""

from __future__ import annotations

from engine.contract import EmailReceived, to_json
from engine.ingest.mail.identity import mail_identity
from engine.ingest.mail.parse import EmailParseError, parse_email
from tests.fuzz.targets import RECEIVED_AT, Target, corpus_files


def parsed(raw: bytes) -> EmailReceived:
    """The mail's event, as the spool reader asks for it."""
    return parse_email(
        raw,
        mail_from="cliente@acme.example",
        rcpt_to=("soporte@support.example.com",),
        peer="192.0.2.1",
        received_at=RECEIVED_AT,
        source="smtp://fuzz",
        identity=mail_identity(raw),
    )


def parse_mail(raw: bytes) -> None:
    """The mail parser: refused only by ``EmailParseError`` (a dead letter); the event it
    makes must serialise."""
    try:
        event = parsed(raw)
    except EmailParseError:
        return
    to_json(event)


def identify_mail(raw: bytes) -> None:
    """``mail_identity``, which the SMTP ingestor calls before its 250: never raises."""
    mail_identity(raw)


TOKENS = (
    b"\r\n", b"\r\n\r\n", b"From: ", b"Subject: ", b"Message-ID: <a@b>", b"In-Reply-To: ",
    b"References: ", b"Content-Type: multipart/mixed; boundary=\"b1\"", b"\r\n--b1\r\n",
    b"\r\n--b1--\r\n", b"Content-Type: text/html; charset=utf-8",
    b"Content-Type: message/rfc822", b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable",
    b"Content-Disposition: attachment; filename*=utf-8''%E2%82%AC.pdf", b"=?utf-8?b?w6E=?=",
    b"=?x-unknown?q?=E1?=", b"=?iso-8859-1?q?caf=E9?=", b"<script", b"</script>", b"<style",
    b"<p>", b"&amp;", b"[#T-", b"-----Original Message-----",
    b"---------- Forwarded message ---------", b"Auto-Submitted: auto-replied",
    b"Date: Sun, 22 Nov 2026 03:00:00 +0000", b";", b"\x00", "ﬃ".encode(),
)  # fmt: skip
MAX_LEN = 64 * 1024


TARGETS = {
    "mail_parser": Target(
        "mail_parser", parse_mail, "EmailParseError (a dead letter)",
        lambda: corpus_files("mail", "*.eml"), MAX_LEN, TOKENS,
    ),
    "mail_identity": Target(
        "mail_identity", identify_mail, "none: never raises",
        lambda: corpus_files("mail", "*.eml"), MAX_LEN, TOKENS,
    ),
}  # fmt: skip
