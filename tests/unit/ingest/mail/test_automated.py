"""Automated mail, new text of replies, subject prefixes, and the per-sender limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.clock import FrozenClock
from engine.ingest.mail.automated import base_subject, split_reply
from engine.ingest.mail.rate_limit import SenderRateLimit
from tests.unit.ingest.mail.test_email_parse import parse

PLAIN = b"From: Ana <ana@acme.example>\r\nSubject: Ayuda\r\nMessage-ID: <a1@acme.example>\r\n"


@pytest.mark.parametrize(
    ("headers", "mail_from", "reason"),
    [
        (b"Auto-Submitted: auto-replied\r\n", "ana@acme.example", "Auto-Submitted: auto-replied"),
        (b"Precedence: bulk\r\n", "ana@acme.example", "Precedence: bulk"),
        (b"Precedence: junk\r\n", "ana@acme.example", "Precedence: junk"),
        (b"X-Autoreply: yes\r\n", "ana@acme.example", "x-autoreply header present"),
        (b"X-Autorespond: yes\r\n", "ana@acme.example", "x-autorespond header present"),
        (b"List-Id: <ventas.acme.example>\r\n", "ana@acme.example", "list-id header present"),
        (b"", "", "null sender <> (a bounce or notification)"),
        (b"", "MAILER-DAEMON@mx.acme.example", "sender mailer-daemon is a mail system"),
        (b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n",
         "ana@acme.example", "delivery or disposition report"),
    ],
)  # fmt: skip
def test_machine_sent_mail_is_recognised_with_its_reason(
    headers: bytes, mail_from: str, reason: str
) -> None:
    event = parse(PLAIN + headers + b"\r\nFuera de la oficina hasta el lunes.\r\n", mail_from)

    assert event.data.automated_reason == reason


def test_a_person_writing_is_not_automated() -> None:
    event = parse(PLAIN + b"Auto-Submitted: no\r\n\r\nLa extension 201 no funciona\r\n")

    assert event.data.automated_reason is None


def test_quoted_history_and_signature_are_not_new_text() -> None:
    body = (
        "Sigue sin funcionar la extensión 201.\n\nSaludos,\n-- \nJuan Pérez\nGerente\n"
        "El lun, 1 ene 2026 a las 10:00, Soporte <s@x.example> escribió:\n"
        "> ¿Puede reiniciar el teléfono?\n> La central está caída\n"
    )

    new, quoted = split_reply(body)

    assert new == "Sigue sin funcionar la extensión 201."
    assert "La central está caída" in quoted


@pytest.mark.parametrize(
    "history",
    [
        "On Mon, Jan 1, 2026 at 10:00 AM Support <s@x.example> wrote:\n> old",
        "-----Original Message-----\nFrom: Support\nold",
        "From: Support <s@x.example>\nSent: Monday, January 1, 2026\nTo: Ana\nold",
        "De: Soporte <s@x.example>\nEnviado: lunes, 1 de enero de 2026\nPara: Ana\nviejo",
        "Sent from my iPhone",
        "Enviado desde mi Samsung",
    ],
)
def test_common_reply_styles_are_cut(history: str) -> None:
    assert split_reply(f"Still broken.\n\n{history}") == ("Still broken.", history)


def test_a_from_line_that_starts_no_quoted_header_block_stays() -> None:
    text = "Hi,\nDe: nuestra parte todo bien.\nThanks"

    assert split_reply(text) == ("Hi,\nDe: nuestra parte todo bien.", "")


@pytest.mark.parametrize(
    ("text", "new"),
    [
        ("Calls drop.\n\nDana Price\nTeam lead, BPO Partner", "Calls drop."),
        ("Calls drop.\n\nThanks,\nMark", "Calls drop."),
        (
            "La troncal no registra.\n\nQuedo atento.\nIng. Luis Ortega\nSistemas",
            "La troncal no registra.",
        ),
        ("Calls drop.\n\nAsterisk restarts every hour since the update.", None),
        ("Calls drop.\n\nMost calls to Mexico", None),
        ("Thanks for the quick answer, it works now.", None),
    ],
)
def test_a_closing_is_not_new_text(text: str, new: str | None) -> None:
    assert split_reply(text)[0] == (text if new is None else new)


def test_classification_reads_only_the_new_text() -> None:
    raw = (
        PLAIN + b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Gracias, ya funciona.\r\n\r\n"
        b"El lun, 1 ene 2026, Soporte <s@x.example> escribi\xc3\xb3:\r\n"
        b"> la central est\xc3\xa1 ca\xc3\xadda\r\n"
    )

    event = parse(raw)

    assert event.data.new_text == "Gracias, ya funciona."
    assert "caída" in event.data.text


def test_unknown_charsets_fall_back_without_crashing() -> None:
    raw = PLAIN + b"Content-Type: text/plain; charset=x-unknown\r\n\r\nExtensi\xf3n ca\xedda\r\n"

    assert parse(raw).data.text == "Extensión caída"


@pytest.mark.parametrize(
    ("subject", "base"),
    [("RE: RV: Fwd: Caída", "Caída"), ("Re[2]: AW: hola", "hola"), ("TR: WG: x", "x"),
     ("Revisión", "Revisión")],
)  # fmt: skip
def test_reply_and_forward_prefixes_are_removed(subject: str, base: str) -> None:
    assert base_subject(subject) == base


def test_a_sender_over_the_limit_waits_for_the_window_to_pass() -> None:
    clock = FrozenClock(datetime(2026, 11, 22, 10, 0, tzinfo=UTC))
    limit = SenderRateLimit(3, timedelta(minutes=1), clock)

    assert [limit.allow("Ana@acme.example") for _ in range(4)] == [True, True, True, False]
    assert limit.allow("otro@acme.example")
    clock.advance(timedelta(seconds=61))
    assert limit.allow("ana@acme.example")
