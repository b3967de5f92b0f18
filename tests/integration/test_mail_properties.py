"""Random bytes and random MIME trees through the live SMTP ingestor (real SMTP, real broker):
the ingestor never crashes, and every ``250`` it gives is backed by a stored record: the
mail whole on the spool at once, then the mail parser's ``email.received`` event or the
raw mail kept whole on the dead-letter topic."""

from __future__ import annotations

import base64
import functools
import smtplib
import uuid
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.contract.topics import DEAD_LETTERS, MAIL_SPOOL, TICKET_EVENTS, named
from tests.integration.harness import (
    EngineProcess,
    TopicReader,
    normal,
    parsed_mail,
    port_open,
    wait_until,
)

SUPPORT = "soporte@support.example.com"
ACCEPTED = "Accepted for ticket "
# What a client may hear besides 250: a line over RFC 5321's 1000 octets (aiosmtpd's 500),
# or mail over the size limit. Never a crash, never a bare 5xx for mail the engine misread.
REFUSALS = {500: b"Line too long", 552: b""}

CHARSETS = st.sampled_from(
    ["utf-8", "iso-8859-1", "windows-1252", "us-ascii", "x-unknown-charset", "utf-7", ""]
)
ENCODINGS = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "bogus"])
SUBTYPES = st.sampled_from(["plain", "html", "calendar", "x-weird"])
# Header text a client can write: no control characters and no line or paragraph
# separators (str.splitlines breaks on them, and EmailMessage refuses such a header).
HEADER_TEXT = st.text(st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"]), max_size=60)


@st.composite
def leaf_part(draw: st.DrawFn) -> EmailMessage:
    part = EmailMessage()
    charset = draw(CHARSETS)
    subtype = draw(SUBTYPES)
    content_type = f"text/{subtype}" + (f"; charset={charset}" if charset else "")
    if draw(st.booleans()):
        content_type = draw(
            st.sampled_from(["application/pdf", "image/png", "message/rfc822", "text"])
        )
        if draw(st.booleans()):
            part["Content-Disposition"] = f'attachment; filename="{draw(HEADER_TEXT)}"'
    part["Content-Type"] = content_type
    part["Content-Transfer-Encoding"] = draw(ENCODINGS)
    part.set_payload(draw(st.binary(max_size=300)).decode("latin-1"))
    return part


def mime_trees() -> st.SearchStrategy[EmailMessage]:
    def multipart(children: st.SearchStrategy[list[EmailMessage]]) -> st.SearchStrategy[Any]:
        @st.composite
        def build(draw: st.DrawFn) -> EmailMessage:
            container = EmailMessage()
            subtype = draw(st.sampled_from(["mixed", "alternative", "related", "report"]))
            boundary = draw(st.sampled_from(["b1", "==x==", "a b", "x" * 75]))
            container["Content-Type"] = f'multipart/{subtype}; boundary="{boundary}"'
            container.set_payload(list[Any](draw(children)))
            return container

        return build()

    return st.recursive(
        leaf_part(), lambda inner: multipart(st.lists(inner, max_size=3)), max_leaves=6
    )


@st.composite
def random_mime(draw: st.DrawFn) -> bytes:
    message = draw(mime_trees())
    for name in ("Subject", "From", "Date", "Message-ID", "In-Reply-To", "References"):
        if draw(st.booleans()):
            value = draw(HEADER_TEXT)
            try:
                message[name] = value
            except (ValueError, TypeError, IndexError):
                message[name] = "x"
    try:
        return message.as_bytes(policy=SMTP_POLICY)
    except Exception:  # the generator itself may build what email cannot serialise
        return message.as_string(policy=SMTP_POLICY).encode("utf-8", "surrogateescape")


RANDOM_MAIL = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.binary(max_size=120), max_size=40).map(b"\r\n".join),
    random_mime(),
)


def deliver(port: int, sender: str, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        client.mail(sender)
        client.rcpt(SUPPORT)
        try:
            return client.data(raw)
        except smtplib.SMTPDataError as error:
            detail = error.smtp_error
            return error.smtp_code, detail if isinstance(detail, bytes) else detail.encode()


def ticket_of(reply: bytes) -> str:
    text = reply.decode(errors="replace")
    assert ACCEPTED in text, text
    return text.rsplit(" ", 1)[-1]


def spooled(spool: TopicReader, ticket: str, sender: str, raw: bytes) -> bool:
    """The mail is on the spool, whole, under the ticket its 250 named."""
    return bool(
        spool.matching(
            lambda key, value: (
                key == ticket
                and value["data"]["mail_from"] == sender
                and normal(base64.b64decode(value["data"]["raw_base64"])) == normal(raw)
            )
        )
    )


def test_random_mail_never_crashes_the_ingestor_and_every_250_is_stored(
    engine: EngineProcess, kafka: str, topic_prefix: str
) -> None:
    spool = TopicReader(kafka, named(MAIL_SPOOL, topic_prefix))
    events, letters = (
        TopicReader(kafka, named(TICKET_EVENTS, topic_prefix)),
        TopicReader(kafka, named(DEAD_LETTERS, topic_prefix)),
    )
    replies: list[tuple[int, bytes]] = []
    accepted: list[tuple[str, str, bytes]] = []

    @settings(
        max_examples=80,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        database=None,
    )
    @given(raw=RANDOM_MAIL)
    def one_mail(raw: bytes) -> None:
        sender = f"prop-{uuid.uuid4().hex[:12]}@acme.example"
        code, reply = deliver(engine.smtp_port, sender, raw)
        replies.append((code, reply))
        if code == 250:
            ticket = ticket_of(reply)
            assert spooled(spool, ticket, sender, raw), (reply, raw[:200])
            accepted.append((ticket, sender, raw))
        else:
            assert code in REFUSALS and REFUSALS[code] in reply, (code, reply)

    try:
        one_mail()
        for ticket, sender, raw in accepted:  # and the parser made something of each
            wait_until(
                functools.partial(parsed_mail, events, letters, ticket, sender, raw),
                60,
                f"the event or dead letter of the mail {sender} sent, accepted for {ticket}",
            )
    finally:
        spool.close()
        events.close()
        letters.close()
    assert port_open(engine.smtp_port)
    assert sum(1 for code, _ in replies if code == 250) >= len(replies) // 2, replies
