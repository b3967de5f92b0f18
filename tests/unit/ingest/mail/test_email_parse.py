"""Parsing received mail into email.received events."""

from __future__ import annotations

import hashlib
import html
import json
import re
from datetime import UTC, datetime
from email.message import EmailMessage, MIMEPart

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.contract import EmailReceived, to_json
from engine.ingest.mail.parse import (
    MAX_MAIL_BYTES,
    MAX_MIME_PARTS,
    EmailParseError,
    ParseBudgetError,
    html_to_text,
    parse_email,
)

RECEIVED = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def parse(raw: bytes, mail_from: str = "juan@cliente.mx") -> EmailReceived:
    return parse_email(
        raw,
        mail_from=mail_from,
        rcpt_to=("soporte@support.example.com",),
        peer="127.0.0.1",
        received_at=RECEIVED,
        source="smtp://test",
    )


LATIN1_QP = (
    b"From: =?iso-8859-1?q?Juan_P=E9rez?= <Juan@Cliente.MX>\r\n"
    b"To: soporte@support.example.com\r\n"
    b"Subject: =?iso-8859-1?q?Central_ca=EDda?=\r\n"
    b"Message-ID: <abc.123@cliente.mx>\r\n"
    b"Date: Fri, 20 Nov 2026 09:00:00 -0600\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"La central est=E1 ca=EDda.\r\n"
)


def test_latin1_quoted_printable_mail_is_decoded() -> None:
    event = parse(LATIN1_QP)

    data = event.data
    assert data.subject == "Central caída"
    assert data.text == "La central está caída."
    assert data.from_address == "juan@cliente.mx"
    assert data.from_name == "Juan Pérez"
    assert data.message_id == "abc.123@cliente.mx"
    assert data.date == datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    assert event.event_id.startswith("email:")


def test_the_same_message_id_gives_the_same_event_and_ticket() -> None:
    first, second = parse(LATIN1_QP), parse(LATIN1_QP.replace(b"est=E1", b"estaba"))

    assert first.event_id == second.event_id
    assert first.data.ticket_id == second.data.ticket_id


def test_html_only_mail_becomes_readable_text() -> None:
    message = EmailMessage()
    message["From"] = "a@b.example"
    message["Subject"] = "HTML"
    message.set_content(
        "<html><style>p{}</style><body><p>Hola,</p><p>la central&nbsp;est&aacute; "
        "ca&iacute;da</p></body></html>",
        subtype="html",
    )

    event = parse(message.as_bytes())

    assert event.data.text == "Hola,\nla central está caída"


def test_text_is_preferred_and_attachments_are_metadata_only() -> None:
    message = EmailMessage()
    message["From"] = "a@b.example"
    message["Subject"] = "Logs"
    message["Message-ID"] = "<m1@b.example>"
    message.set_content("Plain words")
    message.add_alternative("<p>HTML words</p>", subtype="html")
    message.add_attachment(b"\x00" * 2048, maintype="application", subtype="octet-stream",
                           filename="capture.pcap")  # fmt: skip

    data = parse(message.as_bytes()).data

    assert data.text == "Plain words"
    (attachment,) = data.attachments
    assert (attachment.filename, attachment.size_bytes) == ("capture.pcap", 2048)
    assert len(attachment.sha256) == 64


def test_mail_without_message_id_is_identified_by_content() -> None:
    raw = b"From: a@b.example\r\nSubject: hola\r\n\r\nsin id\r\n"

    first, again = parse(raw), parse(raw)

    assert first.data.message_id is None
    assert first.data.ticket_id == again.data.ticket_id


def test_html_to_text_drops_scripts() -> None:
    assert html_to_text("<script>alert(1)</script><div>ok</div>") == "ok"


def _html_to_text_by_regexes(markup: str) -> str:
    """The conversion as it was first written: three regular expressions, each a scan
    of the rest of the text from every "<" that starts no tag (quadratic)."""
    code = re.compile(r"<(script|style)\b.*?</\1>", re.IGNORECASE | re.DOTALL)
    block_end = re.compile(r"</?(p|div|br|tr|li|h[1-6])\b[^>]*>", re.IGNORECASE)
    with_breaks = block_end.sub("\n", code.sub(" ", markup))
    text = html.unescape(re.sub(r"<[^>]+>", "", with_breaks))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


_MARKUP = st.lists(
    st.sampled_from(
        ["<", ">", "/", "script", "SCRIPT", "style", "Style", "p", "DIV", "br", "h1", " ",
         "a", "&amp;", "\n", "</script>", "<script>", "<p>", "</style >", "<!-- x -->"]
    ),
    max_size=40,
).map("".join)  # fmt: skip


@settings(max_examples=1000, deadline=None)
@given(_MARKUP)
@example("<SCRIPT>x</script>ok<style>a{}</STYLE>")
@example("<script<p>a</p>")
def test_html_to_text_reads_markup_as_the_regexes_did(markup: str) -> None:
    assert html_to_text(markup) == _html_to_text_by_regexes(markup)


@pytest.mark.parametrize("unit", ["<script", "<style", "<p", "<", "<a <script>", "<p<<style>"])
def test_html_to_text_of_a_long_run_of_unclosed_tags_returns(unit: str) -> None:
    markup = unit * (400_000 // len(unit))  # hours of work when each "<" scans to the end

    assert len(html_to_text(markup)) <= len(markup)


def test_an_html_mail_of_repeated_script_tags_becomes_an_event() -> None:
    raw = (
        b"From: a@acme.example\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        + b"<script" * 100_000
        + b"<p>la central esta caida</p>\r\n"
    )

    event = parse(raw)

    assert event.data.text_truncated and event.data.from_address == "a@acme.example"


@pytest.mark.parametrize(
    ("header", "field"),
    [
        (b"Content-Type: text/plain" + b";" * 100_000, "header Content-Type"),
        (b"Content-Disposition: inline" + b";" * 100_000, "header Content-Disposition"),
        (b"Content-Transfer-Encoding: 7bit" + b";" * 100_000, "header Content-Transfer-Encoding"),
    ],
)
def test_a_mime_header_field_too_long_to_parse_is_refused_by_name(
    header: bytes, field: str
) -> None:
    raw = b"From: a@acme.example\r\nSubject: hola\r\n" + header + b"\r\n\r\nhola\r\n"

    with pytest.raises(EmailParseError) as refused:
        parse(raw)

    assert refused.value.field == field and "2,000" in refused.value.reason


@pytest.mark.parametrize("run", [b'"' * 100_000, b"," * 100_000])
def test_an_address_field_too_long_to_parse_is_read_from_its_raw_text(run: bytes) -> None:
    raw = b"From: a@acme.example" + run + b"\r\nCc: " + run + b"\r\n\r\nhola\r\n"

    event = parse(raw, mail_from="envelope@acme.example")

    assert event.data.text == "hola"


def test_a_parse_past_its_budget_is_refused() -> None:
    with pytest.raises(ParseBudgetError) as refused:
        parse_email(
            LATIN1_QP, mail_from="juan@cliente.mx", rcpt_to=("s@support.example.com",),
            peer="127.0.0.1", received_at=RECEIVED, source="smtp://test", budget_seconds=0.0,
        )  # fmt: skip

    assert refused.value.field == "message" and "budget" in refused.value.reason


def test_a_mail_of_too_many_parts_is_refused() -> None:
    parts = b"".join(
        b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % n for n in range(MAX_MIME_PARTS)
    )
    raw = b"From: a@acme.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"

    with pytest.raises(ParseBudgetError, match="MIME parts"):
        parse(raw + parts + b"--b--\r\n")


def test_a_mail_over_the_size_bound_is_refused() -> None:
    raw = b"From: a@acme.example\r\n\r\n" + b"x" * MAX_MAIL_BYTES

    with pytest.raises(ParseBudgetError, match="bytes, over"):
        parse(raw)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_parse_or_fail_with_a_named_field(raw: bytes) -> None:
    try:
        event = parse(raw)
    except EmailParseError as error:
        assert error.field
    else:
        assert event.data.size_bytes == len(raw)


HEADERS = st.sampled_from(
    ["Subject", "From", "Message-ID", "In-Reply-To", "References", "Date", "Content-Type",
     "Content-Transfer-Encoding", "To"]
)  # fmt: skip


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(st.tuples(HEADERS, st.text(max_size=80)), max_size=8),
    st.binary(max_size=512),
)
@example(headers=[("From", "0@")], body=b"")  # once raised IndexError in getaddresses
def test_random_headers_never_crash_the_parser(headers: list[tuple[str, str]], body: bytes) -> None:
    raw = b"".join(
        f"{name}: {value}".encode("utf-8", "surrogatepass") + b"\r\n"
        for name, value in headers
        if "\n" not in value and "\r" not in value
    )
    try:
        parse(raw + b"\r\n" + body)
    except EmailParseError as error:  # refused, and the refusal names what failed
        assert error.field


GMAIL_FORWARD = (
    "Can you look at this? It is our Monterrey office.\r\n\r\n"
    "---------- Forwarded message ---------\r\n"
    "From: Luis Ortega <luis@cliente.mx>\r\n"
    "Date: Thu, 19 Nov 2026 at 18:02\r\n"
    "Subject: Central caida\r\n"
    "To: <it@cliente.mx>\r\n\r\n"
    "La central no levanta desde la mañana, no entran llamadas.\r\n\r\n"
    "El jue, 19 nov 2026, Ana <ana@cliente.mx> escribió:\r\n"
    "> ¿Ya revisaron la fuente?\r\n"
)
OUTLOOK_FORWARD_ES = (
    "Les reenvío el reporte del sitio.\r\n\r\n"
    "________________________________\r\n"
    "De: Marta Díaz <marta@cliente.mx>\r\n"
    "Enviado: jueves, 19 de noviembre de 2026 17:40\r\n"
    "Para: Sistemas <it@cliente.mx>\r\n"
    "Asunto: Troncal SIP sin registro\r\n\r\n"
    "La troncal SIP perdió el registro y no hay llamadas salientes.\r\n"
)


def plain_mail(subject: str, body: str) -> bytes:
    message = EmailMessage()
    message["From"] = "it@cliente.mx"
    message["To"] = "soporte@support.example.com"
    message["Subject"] = subject
    message["Message-ID"] = "<fwd-1@cliente.mx>"
    message.set_content(body)
    return message.as_bytes()


def test_an_inline_forward_keeps_the_original_sender_and_its_words_for_the_rules() -> None:
    data = parse(plain_mail("Fwd: Central caida", GMAIL_FORWARD)).data

    assert data.forwarded is not None
    assert (data.forwarded.from_address, data.forwarded.from_name) == (
        "luis@cliente.mx",
        "Luis Ortega",
    )
    assert data.forwarded.subject == "Central caida"
    assert data.forwarded.text == "La central no levanta desde la mañana, no entran llamadas."
    assert data.new_text.startswith("Can you look at this? It is our Monterrey office.")
    assert "no entran llamadas" in data.new_text and "revisaron" not in data.new_text


def test_an_outlook_forward_in_spanish_is_found_by_its_rv_subject() -> None:
    data = parse(plain_mail("RV: Troncal SIP sin registro", OUTLOOK_FORWARD_ES)).data

    assert data.forwarded is not None
    assert data.forwarded.from_address == "marta@cliente.mx"
    assert data.forwarded.subject == "Troncal SIP sin registro"
    assert "perdió el registro" in data.new_text


def test_an_outlook_reply_is_not_a_forward_and_its_history_is_cut() -> None:
    data = parse(plain_mail("RE: Troncal SIP sin registro", OUTLOOK_FORWARD_ES)).data

    assert data.forwarded is None
    assert data.new_text == "Les reenvío el reporte del sitio."


def test_a_mail_forwarded_as_an_attachment_is_read_from_the_attached_message() -> None:
    original = EmailMessage()
    original["From"] = "Pedro <pedro@cliente.mx>"
    original["Subject"] = "UPS en batería"
    original["Date"] = "Thu, 19 Nov 2026 17:00:00 -0600"
    original.set_content("El UPS del site está en batería desde hace 10 minutos.")
    wrapper = EmailMessage()
    wrapper["From"] = "it@cliente.mx"
    wrapper["To"] = "soporte@support.example.com"
    wrapper["Subject"] = "FW: UPS en batería"
    wrapper.set_content("Urgente, por favor.")
    wrapper.add_attachment(original)

    data = parse(wrapper.as_bytes()).data

    assert data.forwarded is not None and data.forwarded.from_address == "pedro@cliente.mx"
    assert data.new_text.startswith("Urgente, por favor.")
    assert "está en batería" in data.new_text
    [attached] = data.attachments
    assert attached.content_type == "message/rfc822" and attached.size_bytes > 0


HEAD = b"From: ana@cliente.mx\r\nTo: soporte@support.example.com\r\nMessage-ID: <p1@cliente.mx>\r\n"


def forwarding(original: bytes) -> bytes:
    """A mail forwarding ``original`` as its attachment (line ends LF, as the parser
    writes a forwarded message)."""
    return (
        b'From: ana@cliente.mx\nSubject: FW\nContent-Type: multipart/mixed; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\nUrgente.\n"
        b"--b\nContent-Type: message/rfc822\n\n" + original + b"\n--b--\n"
    )


def test_a_forwarded_message_is_kept_as_its_bytes_not_written_again() -> None:
    original = (
        b"From: pedro@cliente.mx\nSubject: " + b"UPS en bater\xc3\xada " * 8 + b"\n"
        b"Content-Type: text/plain; charset=utf-8\n\n"
        b"El UPS del site est\xc3\xa1 en bater\xc3\xada.\n"
    )

    [attached] = parse(forwarding(original)).data.attachments

    assert attached.sha256 == hashlib.sha256(original).hexdigest()


def test_a_forwarded_message_with_a_parameter_name_too_long_to_fold_is_read() -> None:
    # Found by fuzzing (tests/fuzz/regressions/mail_parser/): writing the forwarded
    # message again folded its Content-Type, and the email package's folding of a
    # parameter whose name fills the line never ends.
    original = (
        b"From: pedro@cliente.mx\nContent-Type: text/plain; " + b"c" * 80 + b"=utf-8\n\nSin tono.\n"
    )

    [attached] = parse(forwarding(original)).data.attachments

    assert attached.size_bytes == len(original)


def test_an_encoded_subject_in_an_unknown_charset_is_decoded_like_a_body() -> None:
    raw = HEAD + b"Subject: =?x-mac-bogus?Q?Tel=E9fono_de_recepci=F3n?=\r\n\r\nhola\r\n"

    assert parse(raw).data.subject == "Teléfono de recepción"


def test_eight_bit_text_without_a_declared_charset_is_not_read_as_ascii() -> None:
    raw = HEAD + b"Subject: Desvio\r\n\r\n\xbfC\xf3mo configuro el desv\xedo?\r\n"

    assert parse(raw).data.text == "¿Cómo configuro el desvío?"


def test_parts_under_another_boundary_than_the_declared_one_are_still_read() -> None:
    raw = HEAD + (
        b"Subject: Sin llamadas\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="declared"\r\n\r\n'
        b"--used\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nNo hay llamadas.\r\n"
        b"--used\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>No hay llamadas.</p>\r\n"
        b"--used--\r\n"
    )

    assert parse(raw).data.text == "No hay llamadas."


def test_a_multipart_without_a_boundary_is_read_as_its_plain_text() -> None:
    raw = HEAD + (
        b"Subject: SIP\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n"
        b"Our phones cannot register since 9am.\r\n"
    )

    assert parse(raw).data.text == "Our phones cannot register since 9am."


def test_eight_bit_text_of_a_multipart_without_a_boundary_is_read_as_its_bytes_say() -> None:
    # Found by fuzzing (tests/fuzz/regressions/mail_parser/): it raised UnicodeEncodeError.
    raw = HEAD + (
        b"Subject: tono\r\nContent-Type: multipart/mixed\r\n\r\n"
        + "La línea no tiene tono.\r\n".encode()
    )

    assert parse(raw).data.text == "La línea no tiene tono."


def test_a_related_part_without_a_boundary_is_refused_naming_the_body() -> None:
    # Found by fuzzing (tests/fuzz/regressions/mail_parser/): the email package's get_body
    # takes the first character of such a part's text for its first part, and raised
    # AttributeError.
    raw = HEAD + (
        b'Subject: SIP\r\nContent-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        b"--outer\r\nContent-Type: multipart/related\r\n\r\nTrunk down.\r\n--outer--\r\n"
    )

    with pytest.raises(EmailParseError) as refused:
        parse(raw)

    assert refused.value.field == "body"


def test_an_image_pasted_inline_is_an_attachment_and_the_alternatives_are_not() -> None:
    message = EmailMessage()
    message["From"] = "ana@cliente.mx"
    message["Subject"] = "Error en pantalla"
    message.set_content("Vean la captura.")
    message.add_alternative('<p>Vean la captura.</p><img src="cid:shot">', subtype="html")
    html = message.get_body(preferencelist=("html",))
    assert isinstance(html, MIMEPart)
    html.add_related(b"\x89PNG....", maintype="image", subtype="png", cid="<shot>")

    data = parse(message.as_bytes()).data

    assert data.text == "Vean la captura."
    assert [a.content_type for a in data.attachments] == ["image/png"]


def test_bytes_that_are_no_mail_at_all_are_refused_for_the_dead_letter_topic() -> None:
    import gzip

    garbage = gzip.compress(b"scanner output " * 50)

    with pytest.raises(EmailParseError, match="not a mail"):
        parse(garbage)


def test_plain_text_without_any_header_is_still_a_mail() -> None:
    assert parse(b"La central esta caida desde las 9.\r\n").data.text == (
        "La central esta caida desde las 9."
    )


def test_raw_eight_bit_bytes_in_a_subject_are_decoded_not_kept_as_surrogates() -> None:
    raw = HEAD + b"Subject: Extensi\xf3n 3 sin tono\r\n\r\nNo tiene tono.\r\n"

    event = parse(raw)

    assert event.data.subject == "Extensión 3 sin tono"
    assert to_json(event)


def test_a_date_with_a_number_too_large_for_a_date_is_no_date() -> None:
    # Found by fuzzing: parsedate_to_datetime raised OverflowError, and the mail was
    # dead-lettered.
    raw = (
        HEAD
        + b"Subject: x\r\nDate: Fri, 20 Nov 2026 13:40:"
        + b"9" * 20
        + b" -0600\r\n\r\nhola\r\n"
    )

    assert parse(raw).data.date is None


@pytest.mark.parametrize("field", [b"From", b"Cc"])
def test_an_address_field_of_comments_nested_too_deep_is_not_read(field: bytes) -> None:
    # Found by fuzzing (tests/fuzz/regressions/mail_parser/): getaddresses recurses once
    # per "(" of a comment, and raised RecursionError.
    raw = (
        b"To: soporte@support.example.com\r\n" + field + b": " + b"(" * 1000 + b"a@b.example\r\n"
        b"Subject: x\r\n\r\nhola\r\n"
    )

    data = parse(raw, mail_from="juan@cliente.mx").data

    assert (data.from_address, data.cc) == ("juan@cliente.mx", ())


def test_the_cc_header_gives_each_address_once_in_lower_case() -> None:
    message = EmailMessage()
    message["From"] = "it@cliente.mx"
    message["To"] = "soporte@support.example.com"
    message["Cc"] = (
        '"Ruiz, Ana" <Ana@Cliente.MX>, =?utf-8?q?Jos=C3=A9?= <jose@cliente.mx>, '
        "equipo: luis@cliente.mx, ana@cliente.mx;, sin-direccion"
    )
    message["Subject"] = "Central caída"
    message.set_content("No hay llamadas.")

    data = parse(message.as_bytes()).data

    assert data.cc == ("ana@cliente.mx", "jose@cliente.mx", "luis@cliente.mx")


def test_a_mail_without_cc_and_an_old_record_without_the_field_have_none() -> None:
    data = parse(plain_mail("Central caída", "No hay llamadas.")).data
    old = data.model_dump(mode="json")
    del old["cc"]

    assert data.cc == ()
    assert type(data).model_validate_json(json.dumps(old)).cc == ()


@pytest.mark.parametrize("character", ["\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\x00"])
def test_a_from_address_with_a_control_character_never_becomes_the_requester(
    character: str,
) -> None:
    raw = f"From: Ana <ana{character}@acme.example>\r\nSubject: hola\r\n\r\nhola\r\n".encode()

    event = parse(raw, mail_from="ana@acme.example")

    assert event.data.from_address == "ana@acme.example"  # the envelope's, checked by SMTP
    assert parse(raw, mail_from=f"x{character}@acme.example").data.from_address == ""
