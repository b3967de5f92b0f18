"""Support mail through real SMTP, a real broker and the running engine, to tier topics."""

from __future__ import annotations

import base64
import smtplib
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from engine.contract import Tier
from engine.contract.topics import (
    DEAD_LETTERS,
    TICKET_DECISIONS,
    TICKET_EVENTS,
    TICKET_STATE,
    TIER_TOPICS,
    named,
)
from tests.integration.harness import (
    EngineProcess,
    TopicReader,
    parsed_mail,
    send_mail,
    support_mail,
    wait_until,
)

Reader = Callable[[str], TopicReader]


def unique_id() -> str:
    return f"<{uuid.uuid4()}@acme.example>"


def routed_for(ticket_id: str) -> Callable[[str | None, dict[str, Any]], bool]:
    return lambda key, value: key == ticket_id and value["data"]["ticket_id"] == ticket_id


def ticket_of(reply: bytes) -> str:
    """The 250 reply names the ticket: '2.0.0 Accepted for ticket T-...'."""
    return reply.decode().rsplit(" ", 1)[-1]


def test_spanish_outage_lands_on_l3_as_p1(engine: EngineProcess, read_topic: Reader) -> None:
    code, reply = send_mail(
        engine.smtp_port,
        support_mail(
            "Urgente",
            "Buenos días: la central está caída, no entran ni salen llamadas.",
            unique_id(),
        ),
    )
    assert code == 250, reply
    ticket = ticket_of(reply)

    routed = read_topic(TIER_TOPICS[Tier.L3]).wait_for(routed_for(ticket))

    data = routed["data"]
    assert routed["kind"] == "ticket.routed"
    assert data["ticket"]["priority"] == "P1"
    assert data["route"]["tier"] == "L3"
    assert data["classification"]["category"] == "pbx_down"
    assert data["classification"]["impact_row"] == "outage"  # the matrix row, with its facts
    facts = {fact["fact"]: fact["value"] for fact in data["classification"]["impact"]}
    assert (facts["state"], facts["hit"]) == ("down", "service")
    assert data["route"]["route_path"] == ["root", "critical"]


def test_english_how_to_lands_on_l1_as_p4(engine: EngineProcess, read_topic: Reader) -> None:
    code, reply = send_mail(
        engine.smtp_port,
        support_mail(
            "Question",
            "Hello, how do I add a new extension to our PBX for a new employee?",
            unique_id(),
        ),
    )
    assert code == 250, reply
    ticket = ticket_of(reply)

    routed = read_topic(TIER_TOPICS[Tier.L1]).wait_for(routed_for(ticket))

    assert routed["data"]["ticket"]["priority"] == "P4"
    assert routed["data"]["classification"]["category"] == "adding_extensions"
    assert routed["data"]["classification"]["impact_row"] == "information-or-change"
    decision = read_topic(TICKET_DECISIONS).wait_for(routed_for(ticket))
    assert decision["kind"] == "ticket.classified"


def test_resending_the_same_message_id_leaves_one_ticket(
    engine: EngineProcess, read_topic: Reader
) -> None:
    message = support_mail("Sin servicio", "La central está caída desde las 8", unique_id())
    duplicates_before = engine.metric("ticketing_processor_events_total", {"outcome": "duplicate"})

    first_code, first_reply = send_mail(engine.smtp_port, message)
    second_code, second_reply = send_mail(engine.smtp_port, message)

    assert (first_code, second_code) == (250, 250)
    ticket = ticket_of(first_reply)
    assert ticket_of(second_reply) == ticket
    wait_until(
        lambda: (
            engine.metric("ticketing_processor_events_total", {"outcome": "duplicate"})
            > duplicates_before
        ),
        60,
        "the processor to recognise the resent mail",
    )
    routed = read_topic(TIER_TOPICS[Tier.L3]).matching(routed_for(ticket))
    assert len(routed) == 1
    states = read_topic(TICKET_STATE).matching(lambda key, value: key == ticket)
    assert {state["data"]["ticket"]["event_count"] for state in states} == {1}


def test_recipient_outside_support_domains_is_refused(engine: EngineProcess) -> None:
    with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=30) as client:
        client.ehlo()
        client.mail("spammer@elsewhere.example")
        code, reply = client.rcpt("victim@gmail.example")
    assert code == 550
    assert reply.startswith(b"5.7.1")


def test_oversized_mail_is_refused_with_552(engine: EngineProcess) -> None:
    body = "x" * (10 * 1024 * 1024 + 10)
    with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=60) as client:
        client.ehlo()
        code, _ = client.mail("cliente@acme.example", [f"SIZE={len(body)}"])
    assert code == 552


@pytest.mark.parametrize("garbage", [bytes(range(1, 9)) * 8, b"Subject: =?x?\r\n\r\n\xff"])
def test_unparseable_bytes_never_get_a_250_without_a_stored_record(
    engine: EngineProcess, read_topic: Reader, garbage: bytes
) -> None:
    with smtplib.SMTP("127.0.0.1", engine.smtp_port, timeout=30) as client:
        client.ehlo()
        client.mail("cliente@acme.example")
        client.rcpt("soporte@support.example.com")
        code, reply = client.data(garbage)
    assert code == 250, reply
    events, letters = read_topic(TICKET_EVENTS), read_topic(DEAD_LETTERS)
    outcome = wait_until(
        lambda: parsed_mail(events, letters, ticket_of(reply), "cliente@acme.example", garbage),
        60,
        "the mail's event or its dead letter",
    )
    if garbage.startswith(b"\x01"):
        assert outcome["kind"] == "record.dead_lettered"
        assert "not a mail" in outcome["data"]["reason"]


def test_an_invalid_record_on_the_events_topic_is_dead_lettered_naming_the_field(
    engine: EngineProcess, kafka: str, topic_prefix: str, read_topic: Reader
) -> None:
    from kafka import KafkaProducer

    bad = (
        b'{"event_id":"email:bad-' + uuid.uuid4().hex.encode() + b'","kind":"email.received",'
        b'"occurred_at":"2026-11-22T10:00:00Z","source":"test","schema_version":1,'
        b'"data":{"ticket_id":"T-AAAAAAAAAAAAA"}}'
    )
    producer = KafkaProducer(bootstrap_servers=kafka)
    producer.send(named(TICKET_EVENTS, topic_prefix), key=b"T-AAAAAAAAAAAAA", value=bad).get(
        timeout=30
    )
    producer.close()

    letter = read_topic(DEAD_LETTERS).wait_for(
        lambda key, value: (
            value["data"]["origin"] == named(TICKET_EVENTS, topic_prefix)
            and base64.b64decode(value["data"]["payload_base64"]) == bad
        )
    )

    assert letter["kind"] == "record.dead_lettered"
    assert letter["data"]["field"].startswith("data.")
    assert "not a valid ticket event" in letter["data"]["reason"]


def test_an_auto_reply_is_stored_with_its_reason_but_opens_no_ticket(
    engine: EngineProcess, read_topic: Reader
) -> None:
    message = support_mail("Fuera de la oficina", "Estaré fuera hasta el lunes.", unique_id())
    message["Auto-Submitted"] = "auto-replied"
    suppressed_before = engine.metric("ticketing_processor_events_total", {"outcome": "suppressed"})

    code, reply = send_mail(engine.smtp_port, message)

    assert code == 250, reply
    ticket = ticket_of(reply)
    stored = read_topic(TICKET_EVENTS).wait_for(lambda key, value: key == ticket)
    assert stored["data"]["automated_reason"] == "Auto-Submitted: auto-replied"
    wait_until(
        lambda: (
            engine.metric("ticketing_processor_events_total", {"outcome": "suppressed"})
            > suppressed_before
        ),
        60,
        "the processor to pass over the auto-reply",
    )
    assert read_topic(TICKET_STATE).matching(lambda key, value: key == ticket) == []


def test_a_stranger_naming_a_ticket_by_its_tag_opens_a_new_ticket_linked_to_it(
    engine: EngineProcess, read_topic: Reader
) -> None:
    code, reply = send_mail(
        engine.smtp_port,
        support_mail(
            "Question",
            "Hello, how do I add a new extension to our PBX for a new employee?",
            unique_id(),
        ),
    )
    assert code == 250, reply
    ticket = ticket_of(reply)
    read_topic(TIER_TOPICS[Tier.L1]).wait_for(routed_for(ticket))
    stranger = support_mail(
        f"Re: [#{ticket}] Question",
        "URGENTE: la central está caída, no entran ni salen llamadas.",
        unique_id(),
        sender="spam@elsewhere.example",
    )

    code, reply = send_mail(engine.smtp_port, stranger)

    assert code == 250, reply
    linked = read_topic(TICKET_EVENTS).wait_for(
        lambda key, value: (value["data"].get("linked_to") or {}).get("ticket_id") == ticket
    )["data"]
    assert linked["ticket_id"] != ticket and linked["from_address"] == "spam@elsewhere.example"
    routed = read_topic(TIER_TOPICS[Tier.L3]).wait_for(routed_for(linked["ticket_id"]))["data"]
    assert routed["ticket"]["linked_to"] == linked["linked_to"]
    assert routed["ticket"]["requester"] == "spam@elsewhere.example"
    assert linked["linked_to"]["reason"] in routed["classification"]["explanation"]
    states = read_topic(TICKET_STATE).matching(lambda key, value: key == ticket)
    assert {state["data"]["ticket"]["priority"] for state in states} == {"P4"}
    assert {state["data"]["ticket"]["event_count"] for state in states} == {1}
