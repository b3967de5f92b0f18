"""The mail spool: the ticket a mail's headers name, and what the mail parser makes of a
spool record (an ``email.received`` event, or a dead letter that loses nothing)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.clock import FrozenClock
from engine.contract import EmailReceived, RecordDeadLettered, RecordLocation, to_json
from engine.contract.identity import ticket_id
from engine.contract.topics import DEAD_LETTER_MAX_BYTES, DEAD_LETTERS, MAIL_SPOOL, TICKET_EVENTS
from engine.ingest.mail.identity import mail_identity
from engine.ingest.mail.parser_service import outputs_of
from engine.ingest.mail.spool import read_spooled, spooled_mail

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
MAIL = (
    b"From: Cliente <c@acme.example>\r\nTo: soporte@support.example.com\r\n"
    b"Subject: Hola\r\nMessage-ID: <m1@acme.example>\r\n\r\nla central esta caida\r\n"
)
TAGGED = "T-ABCDEFGHIJKLM"


def spool(raw: bytes, **changes: object) -> bytes:
    record = spooled_mail(
        raw, mail_identity(raw), mail_from="c@acme.example",
        rcpt_to=("soporte@support.example.com",), peer="127.0.0.1", received_at=NOW,
        source="smtp://test", archived=False,
    )  # fmt: skip
    value = json.loads(to_json(record))
    value["data"].update(changes)
    return json.dumps(value).encode()


def dead_letter_of(value: bytes) -> RecordDeadLettered:
    read = read_spooled(value, NOW)
    assert isinstance(read, RecordDeadLettered), read
    return read


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (f"Subject: Re: [#{TAGGED}] caida\r\n".encode(), TAGGED),
        # the tag inside an encoded word, and a reference that would say otherwise
        (
            b"Subject: =?utf-8?q?Re:_[#" + TAGGED.encode() + b"]_ca=C3=ADda?=\r\n"
            b"References: <root@acme.example>\r\n",
            TAGGED,
        ),
        # a reply to one of the engine's own notices
        (f"In-Reply-To: <upd.3.{TAGGED}@support.example.com>\r\n".encode(), TAGGED),
        # the thread's root: first of References, folded over lines
        (
            b"Message-ID: <r2@x>\r\nIn-Reply-To: <r1@x>\r\nReferences: <root@x>\r\n <r1@x>\r\n",
            ticket_id("email", "root@x"),
        ),
        (b"Message-ID: <Own@X>\r\n", ticket_id("email", "own@x")),
    ],
)
def test_the_ticket_of_a_mail_comes_from_its_headers(headers: bytes, expected: str) -> None:
    assert mail_identity(headers + b"Subject: x\r\n\r\nbody\r\n").ticket_id == expected


def test_a_mail_without_ids_or_headers_is_identified_by_its_content() -> None:
    junk = b"\x00\xff\xfe not a mail"

    identity = mail_identity(junk)

    assert identity.message_id is None
    assert identity.ticket_id == mail_identity(junk).ticket_id != mail_identity(MAIL).ticket_id


def test_8_bit_ids_and_subjects_are_read_without_failing() -> None:
    raw = b"Subject: Re: \xe9 [#" + TAGGED.encode() + b"]\r\nMessage-ID: <x\xe9@b>\r\n\r\nhi"

    identity = mail_identity(raw)

    assert identity.ticket_id == TAGGED and identity.message_id == "x\u00e9@b"


_CHARSETS = st.sampled_from([b"utf-8", b"iso-8859-1", b"x-unknown", b""])
_ENCODED_WORDS = st.builds(
    lambda charset, encoding, text: b"=?" + charset + b"?" + encoding + b"?" + text + b"?=",
    st.one_of(_CHARSETS, st.binary(max_size=12)),
    st.sampled_from([b"q", b"Q", b"b", b"B", b"x", b"\xff"]),
    st.binary(max_size=40),
)
_HEADER_VALUES = st.lists(st.one_of(_ENCODED_WORDS, st.binary(max_size=40)), max_size=4).map(
    b" ".join
)
_HEADER_NAMES = st.sampled_from([b"Subject", b"Message-ID", b"In-Reply-To", b"References", b"X"])


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=5), st.binary(max_size=64))
@example([(b"Subject", b"=?utf-\xe9?q?x?=")], b"")  # 8-bit bytes in a charset name
@example([(b"Subject", b"=?\xff?b?eA==?=")], b"")
@example([(b"Subject", b"=?a\x00?q?x?=")], b"")  # a NUL in a charset name
def test_mail_identity_returns_for_any_header_bytes(
    headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    raw = b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n" + body

    identity = mail_identity(raw)

    assert identity.ticket_id.startswith("T-")
    assert identity.sha256 == hashlib.sha256(raw).hexdigest()


def test_a_spooled_mail_is_read_into_its_event_under_the_spooled_ticket() -> None:
    value = spool(MAIL, ticket_id=TAGGED)  # e.g. spooled by an earlier version's rules

    event = read_spooled(value, NOW)

    assert isinstance(event, EmailReceived)
    assert event.data.ticket_id == TAGGED
    assert event.data.message_id == "m1@acme.example"
    assert event.data.new_text.startswith("la central esta caida")
    assert event.occurred_at == NOW and event.source == "smtp://test"


def test_a_mail_that_cannot_be_parsed_is_dead_lettered_whole_with_its_reason() -> None:
    junk = bytes(range(1, 9)) * 8

    letter = dead_letter_of(spool(junk))

    assert letter.data.origin == "smtp" and letter.data.field == "message"
    assert "not a mail" in letter.data.reason
    assert base64.b64decode(letter.data.payload_base64) == junk


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (b"{not json", None),
        (spool(MAIL, raw_base64="***"), "data.raw_base64"),
        (spool(MAIL, sha256="0" * 64), "data.sha256"),
        (spool(MAIL, rcpt_to=[]), "data.rcpt_to"),
    ],
)
def test_a_bad_spool_record_is_dead_lettered_whole_naming_the_field(
    value: bytes, field: str | None
) -> None:
    letter = dead_letter_of(value)

    assert letter.data.origin == MAIL_SPOOL
    assert field is None or letter.data.field == field
    assert base64.b64decode(letter.data.payload_base64) == value


def test_a_record_of_another_kind_on_the_spool_is_dead_lettered() -> None:
    other = to_json(dead_letter_of(spool(bytes(range(1, 9)) * 8)))

    letter = dead_letter_of(other)

    assert letter.data.field == "kind" and "record.dead_lettered" in letter.data.reason


def test_a_batch_keeps_its_order_and_sends_each_outcome_to_its_topic() -> None:
    batch = [spool(MAIL), spool(bytes(range(1, 9)) * 8), spool(MAIL.replace(b"m1@", b"m2@"))]

    outputs, outcomes = outputs_of(batch, FrozenClock(NOW))

    assert [topic for topic, _key, _value in outputs] == [
        TICKET_EVENTS, DEAD_LETTERS, TICKET_EVENTS
    ]  # fmt: skip
    assert outcomes == ["parsed", "dead_lettered", "parsed"]
    assert outputs[0][1].decode() == mail_identity(MAIL).ticket_id


def test_a_mail_whose_event_a_ticket_topic_would_refuse_is_dead_lettered_whole() -> None:
    text = ("\U0001f4de" * 1000 + "\n") * 200  # as text and new_text: over 1 MB of JSON
    raw = MAIL.replace(b"Subject: Hola", b"Content-Type: text/plain; charset=utf-8")
    value = spool(raw.replace(b"la central esta caida\r\n", text.encode()))

    outputs, outcomes = outputs_of([value], FrozenClock(NOW))

    [(topic, _key, letter)] = outputs
    assert (topic, outcomes) == (DEAD_LETTERS, ["dead_lettered"])
    data = json.loads(letter)["data"]
    assert "a ticket topic takes" in data["reason"] and data["origin"] == MAIL_SPOOL
    assert base64.b64decode(data["payload_base64"]) == value


def test_a_mail_too_costly_to_parse_is_dead_lettered_with_the_reason() -> None:
    raw = MAIL.replace(b"Subject: Hola", b"Content-Type: text/plain" + b";" * 100_000)

    letter = dead_letter_of(spool(raw))

    assert letter.data.field == "header Content-Type" and "2,000" in letter.data.reason
    assert base64.b64decode(letter.data.payload_base64) == raw


def test_a_mail_near_the_size_limit_whose_event_is_too_large_gives_a_dead_letter_that_fits() -> (
    None
):
    text = ("\U0001f4de" * 1000 + "\n").encode() * 2500  # its event: over 1 MB of JSON
    raw = MAIL.replace(b"Subject: Hola", b"Content-Type: text/plain; charset=utf-8")
    raw = raw.replace(b"la central esta caida\r\n", text)
    value = spool(raw)  # base64 in JSON: a dead letter of it whole would be over 17 MB
    where = RecordLocation(topic=MAIL_SPOOL, partition=0, offset=42)

    outputs, outcomes = outputs_of([value], FrozenClock(NOW), [where])

    [(topic, _key, letter)] = outputs
    assert (topic, outcomes) == (DEAD_LETTERS, ["dead_lettered"])
    assert len(letter) < DEAD_LETTER_MAX_BYTES
    data = json.loads(letter)["data"]
    assert data["payload_truncated"] and data["payload_size"] == len(value)
    assert data["original"] == {"topic": MAIL_SPOOL, "partition": 0, "offset": 42}
    assert data["payload_sha256"] == hashlib.sha256(value).hexdigest()
