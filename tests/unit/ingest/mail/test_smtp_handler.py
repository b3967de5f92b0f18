"""The SMTP replies, through a real aiosmtpd server on loopback and a real client.

Kafka is replaced at the seam (the publisher) to force its failures; the tests against
the real broker are in tests/integration.
"""

from __future__ import annotations

import asyncio
import base64
import json
import smtplib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP

from engine.clock import FrozenClock, SystemClock
from engine.contract import EmailReceived
from engine.contract.topics import MAIL_SPOOL
from engine.errors import PublishError
from engine.ingest.mail.archive import MailArchive, archive_path
from engine.ingest.mail.rate_limit import SenderRateLimit
from engine.ingest.mail.smtp import SupportMailHandler, SupportSMTP, serve_smtp
from engine.ingest.mail.spool import read_spooled

MAIL = (
    b"From: Cliente <c@acme.example>\r\nTo: soporte@support.example.com\r\n"
    b"Subject: Hola\r\nMessage-ID: <m1@acme.example>\r\n\r\nla central esta caida\r\n"
)


class RecordingPublisher:
    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure
        self.published: list[tuple[str, bytes | None, dict[str, Any]]] = []

    async def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        if self.failure is not None:
            raise self.failure
        self.published.append((topic, key, json.loads(value)))


def serving(
    handler: SupportMailHandler,
    client: Callable[[int], Any],
    size_limit: int = 64 * 1024,
    **options: Any,
) -> Any:
    """``client(port)``, in a thread, against ``handler`` served on loopback (``options``
    are ``serve_smtp``'s)."""

    async def main() -> Any:
        server = await serve_smtp(handler, "127.0.0.1", 0, size_limit, **options)
        try:
            return await asyncio.to_thread(client, server.sockets[0].getsockname()[1])
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


def with_server(
    publisher: RecordingPublisher,
    client: Callable[[int], Any],
    size_limit: int = 64 * 1024,
    archive: MailArchive | None = None,
) -> Any:
    handler = SupportMailHandler(
        publisher, ["support.example.com"], SystemClock(), "smtp://test", archive=archive
    )
    return serving(handler, client, size_limit)


def send(raw: bytes, rcpt: str = "soporte@support.example.com") -> Callable[[int], Any]:
    def client(port: int) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.ehlo()
            smtp.mail("c@acme.example")
            code, reply = smtp.rcpt(rcpt)
            if code != 250:
                return code, reply
            return smtp.data(raw)

    return client


def received(spooled: dict[str, Any]) -> EmailReceived:
    """What the mail parser makes of a spooled mail."""
    event = read_spooled(json.dumps(spooled).encode(), SystemClock().now())
    assert isinstance(event, EmailReceived), event
    return event


def test_250_only_after_the_whole_mail_is_spooled_keyed_by_its_ticket() -> None:
    publisher = RecordingPublisher()

    code, reply = with_server(publisher, send(MAIL))

    assert code == 250
    ((topic, key, spooled),) = publisher.published
    assert topic == MAIL_SPOOL
    assert spooled["kind"] == "email.spooled"
    assert base64.b64decode(spooled["data"]["raw_base64"]) == MAIL
    ticket = spooled["data"]["ticket_id"]
    assert key is not None and key.decode() == ticket
    assert reply.decode().endswith(ticket)
    assert received(spooled).data.ticket_id == ticket


def test_kafka_unavailable_gives_451_never_250() -> None:
    publisher = RecordingPublisher(PublishError("Kafka did not acknowledge within 5s"))

    code, reply = with_server(publisher, send(MAIL))

    assert code == 451
    assert reply.startswith(b"4.3.0")


def test_an_unexpected_error_in_the_handler_is_451_not_a_permanent_500() -> None:
    publisher = RecordingPublisher(RuntimeError("bug"))

    code, _reply = with_server(publisher, send(MAIL))

    assert code == 451


def test_foreign_recipient_domain_is_550_no_open_relay() -> None:
    publisher = RecordingPublisher()

    code, reply = with_server(publisher, send(MAIL, rcpt="someone@elsewhere.example"))

    assert code == 550
    assert b"5.7.1" in reply
    assert publisher.published == []


def test_mail_over_the_limit_is_552_after_data() -> None:
    publisher = RecordingPublisher()
    big = MAIL + (b"x" * 70 + b"\r\n") * 30

    code, _ = with_server(publisher, send(big), size_limit=1024)

    assert code == 552
    assert publisher.published == []


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (b"X-Filler: y\r\n" * 1001, b"1005 header fields (limit 1000)"),
        (b"X-Long: " + b"y" * 900 + b"\r\n" + (b" " + b"y" * 900 + b"\r\n") * 300, b"bytes"),
    ],
)
def test_a_header_section_over_its_limits_is_552_and_nothing_is_stored(
    headers: bytes, reason: bytes
) -> None:
    publisher = RecordingPublisher()

    code, reply = with_server(publisher, send(headers + MAIL), size_limit=1024 * 1024)

    assert code == 552 and reply.startswith(b"5.3.4 Message header too large") and reason in reply
    assert publisher.published == []


def with_limited_server(
    publisher: RecordingPublisher, client: Callable[[int], Any], per_minute: int = 2
) -> Any:
    """A server whose senders may send ``per_minute`` mails a minute (on a frozen clock)."""
    clock = FrozenClock(datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
    handler = SupportMailHandler(
        publisher, ["support.example.com"], clock, "smtp://test",
        rate_limit=SenderRateLimit(per_minute, timedelta(minutes=1), clock),
    )  # fmt: skip
    return serving(handler, client)


def mails(
    port: int, count: int, sender: str = "c@acme.example", source: str = "127.0.0.1"
) -> list[int]:
    """The end-of-DATA reply code of each of ``count`` mails sent on one connection."""
    codes = []
    with smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=(source, 0)) as smtp:
        smtp.ehlo()
        for _ in range(count):
            smtp.mail(sender)
            smtp.rcpt("soporte@support.example.com")
            code, _reply = smtp.data(MAIL)
            codes.append(code)
    return codes


def test_a_sender_over_its_rate_limit_is_told_to_retry_at_the_end_of_data() -> None:
    publisher = RecordingPublisher()

    def three_mails(port: int) -> tuple[list[int], bytes]:
        codes = mails(port, 2)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.ehlo()
            assert smtp.mail("c@acme.example")[0] == 250
            smtp.rcpt("soporte@support.example.com")
            code, reply = smtp.data(MAIL)
        return [*codes, code], reply

    codes, reply = with_limited_server(publisher, three_mails)

    assert codes == [250, 250, 451]
    assert reply.startswith(b"4.7.1") and b"retry later" in reply
    assert len(publisher.published) == 2


def test_mail_from_and_rset_do_not_spend_the_senders_allowance() -> None:
    publisher = RecordingPublisher()

    def lock_out_then_send(port: int) -> list[int]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.ehlo()
            for _ in range(10):
                smtp.mail("c@acme.example")
                smtp.rset()
        return mails(port, 2)

    assert with_limited_server(publisher, lock_out_then_send) == [250, 250]


def test_another_clients_mails_do_not_spend_this_clients_allowance() -> None:
    publisher = RecordingPublisher()

    def two_clients(port: int) -> tuple[list[int], list[int]]:
        other = mails(port, 3, source="127.0.0.2")
        return other, mails(port, 2, source="127.0.0.1")

    other, ours = with_limited_server(publisher, two_clients)

    assert other == [250, 250, 451]
    assert ours == [250, 250]


def test_a_mail_not_stored_does_not_spend_the_allowance() -> None:
    publisher = RecordingPublisher(PublishError("Kafka did not acknowledge within 5s"))

    def outage_then_recovery(port: int) -> tuple[list[int], list[int]]:
        during = mails(port, 3)
        publisher.failure = None
        return during, mails(port, 2)

    during, after = with_limited_server(publisher, outage_then_recovery)

    assert during == [451, 451, 451]
    assert after == [250, 250]


def test_with_an_archive_the_whole_mail_is_kept_before_250_and_named_in_the_event(
    tmp_path: Path,
) -> None:
    publisher = RecordingPublisher()

    code, _ = with_server(publisher, send(MAIL), archive=MailArchive(tmp_path))

    assert code == 250
    [(_, _, spooled)] = publisher.published
    assert spooled["data"]["archived"] is True
    digest = received(spooled).data.archived_sha256
    assert digest is not None
    assert archive_path(tmp_path, digest).read_bytes() == MAIL


def test_an_archive_that_cannot_be_written_is_451_and_nothing_is_published(
    tmp_path: Path,
) -> None:
    publisher = RecordingPublisher()
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("x")

    code, reply = with_server(publisher, send(MAIL), archive=MailArchive(not_a_directory))

    assert code == 451 and b"archive" in reply
    assert publisher.published == []


def test_a_bounce_from_the_null_sender_is_recorded_as_automated() -> None:
    publisher = RecordingPublisher()
    bounce = MAIL.replace(b"Subject: Hola", b"Subject: Undelivered Mail Returned to Sender")

    def null_sender(port: int) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.ehlo()
            smtp.mail("<>")
            smtp.rcpt("soporte@support.example.com")
            return smtp.data(bounce)

    code, _ = with_server(publisher, null_sender)

    assert code == 250
    [(_, _, spooled)] = publisher.published
    event = received(spooled)
    assert event.data.mail_from == ""
    assert event.data.automated_reason == "null sender <> (a bounce or notification)"


@pytest.mark.parametrize(
    "arg",
    [
        "<c@acme.example>",
        "<c@acme.example> SIZE=1000 BODY=8BITMIME",
        "c@acme.example",
        '<"quoted local"@acme.example>',
        "<>",
        "<c@acme.example",
        "<@relay.example:c@acme.example>",
        "not an address",
    ],
)
def test_remembered_addresses_are_what_aiosmtpd_parses(arg: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        ours = SupportSMTP(object(), loop=loop)
        theirs = SMTP(object(), loop=loop)

        assert ours._getaddr(arg) == theirs._getaddr(arg)
        assert ours._getaddr(arg) == theirs._getaddr(arg)  # the second from memory
    finally:
        loop.close()


@pytest.mark.parametrize(
    "sender",
    ["ana\x0bx@acme.example", "ana\x0c@acme.example", "ana\x1c@acme.example",
     "ana\x7f@acme.example", '"a b"@acme.example'],
)  # fmt: skip
def test_a_sender_that_is_not_one_mailbox_is_refused_at_mail_from(sender: str) -> None:
    publisher = RecordingPublisher()

    def client(port: int) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.ehlo()
            return smtp.docmd(f"MAIL FROM:<{sender}>")

    code, reply = with_server(publisher, client)
    assert code == 553, reply
    assert reply.startswith(b"5.1.7")
    assert not publisher.published


@pytest.mark.parametrize("sender", ["", "MAILER-DAEMON@relay.example", "c@acme.example"])
def test_the_null_sender_and_ordinary_senders_are_taken_at_mail_from(sender: str) -> None:
    def client(port: int) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.ehlo()
            return smtp.docmd(f"MAIL FROM:<{sender}>")

    assert with_server(RecordingPublisher(), client)[0] == 250
