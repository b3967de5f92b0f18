"""The SPF and DMARC verdicts a relay stamped on a mail, read once at parse time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.contract import SenderCheck
from engine.ingest.mail.authentication import failed_checks
from engine.ingest.mail.parse import parse_email

SPF, DMARC = SenderCheck.SPF, SenderCheck.DMARC


@pytest.mark.parametrize(
    ("results", "received_spf", "failed"),
    [
        ([], [], ()),
        (["mx.support.example; spf=pass smtp.mailfrom=acme.example"], [], ()),
        (["mx.support.example; spf=fail smtp.mailfrom=acme.example"], [], (SPF,)),
        (["mx.support.example; SPF = FAIL smtp.mailfrom=acme.example"], [], (SPF,)),
        (
            ["mx.support.example;\r\n\tdkim=pass header.d=x;\r\n\tdmarc=fail (p=reject)"],
            [],
            (DMARC,),
        ),
        (["mx.support.example; dmarc=fail; spf=fail"], [], (SPF, DMARC)),
        (["mx.support.example; spf=softfail smtp.mailfrom=x"], [], ()),  # not a fail
        (["mx.support.example; spf=failed"], [], ()),  # a word that is not the result
        (["mx.support.example; dkim=fail header.d=x"], [], ()),  # DKIM alone: lists break it
        (["mx.support.example (spf=fail in a comment); spf=pass"], [], ()),
        (["spf=fail"], [], ()),  # no authserv-id: the result would be the first element
        (["mx.support.example; none"], [], ()),
        (["mx.a; spf=pass", "mx.b; dmarc=fail"], [], (DMARC,)),  # any field that says so
        ([], ["fail (mx.support.example: domain of x does not designate 192.0.2.9)"], (SPF,)),
        ([], ["Fail (mx.support.example: ...) client-ip=192.0.2.9"], (SPF,)),
        ([], ["softfail (mx.support.example: ...)"], ()),
        ([], ["pass (mx.support.example: ...)"], ()),
        (["mx; dmarc=fail"], ["fail"], (SPF, DMARC)),
    ],
)
def test_which_sender_checks_failed(
    results: list[str], received_spf: list[str], failed: tuple[SenderCheck, ...]
) -> None:
    assert failed_checks(results, received_spf) == failed


def mail(*fields: str) -> bytes:
    head = "\r\n".join(
        (*fields, "From: Ana <ana@acme.example>", "To: soporte@support.example.com",
         "Subject: Central caida", "Message-ID: <m1@acme.example>")
    )  # fmt: skip
    return f"{head}\r\n\r\nNo entran llamadas.\r\n".encode()


@pytest.mark.parametrize(
    ("fields", "failed"),
    [
        ((), ()),
        (("Authentication-Results: mx.support.example; spf=pass smtp.mailfrom=acme.example",), ()),
        (
            (
                "Authentication-Results: mx.support.example;\r\n spf=fail smtp.mailfrom=x;"
                "\r\n dmarc=fail header.from=acme.example",
                "Received-SPF: fail (mx.support.example: 192.0.2.9 is not allowed)",
            ),
            (SPF, DMARC),
        ),
    ],
)
def test_the_parsed_mail_records_the_checks_the_relay_stamped_as_failed(
    fields: tuple[str, ...], failed: tuple[SenderCheck, ...]
) -> None:
    event = parse_email(
        mail(*fields), mail_from="ana@acme.example", rcpt_to=("soporte@support.example.com",),
        peer="127.0.0.1", received_at=datetime(2026, 11, 22, tzinfo=UTC), source="smtp://t",
    )  # fmt: skip

    assert event.data.failed_checks == failed
