"""XFORWARD: parsed as Postfix sends it, taken from trusted relays only, through a real
aiosmtpd server and smtplib clients bound to distinct loopback addresses."""

from __future__ import annotations

import base64
import json
import smtplib
from collections.abc import Callable
from datetime import timedelta
from ipaddress import ip_network
from typing import Any

import pytest

from engine.clock import SystemClock
from engine.ingest.mail.rate_limit import SenderRateLimit
from engine.ingest.mail.smtp import SupportMailHandler
from engine.ingest.mail.spool import read_spooled
from engine.ingest.mail.xforward import (
    SmtpClient,
    XforwardError,
    is_trusted,
    parse_xforward,
    smtp_client,
)
from engine.settings import Settings
from tests.unit.ingest.mail.test_smtp_handler import MAIL, RecordingPublisher, serving

RELAY = "127.0.0.1"
STRANGER = "127.0.0.9"


def test_attributes_are_read_case_insensitively_and_xtext_decoded() -> None:
    assert parse_xforward("name=mx.acme.example ADDR=203.0.113.7 HELO=a+2Bb") == {
        "NAME": "mx.acme.example",
        "ADDR": "203.0.113.7",
        "HELO": "a+b",
    }


def test_unknown_values_leave_the_attribute_unset() -> None:
    assert parse_xforward("NAME=[UNAVAILABLE] ADDR=[TEMPUNAVAIL]") == {"NAME": "", "ADDR": ""}
    assert smtp_client(RELAY, {"ADDR": ""}) == SmtpClient(RELAY)


@pytest.mark.parametrize(
    ("argument", "named"),
    [
        ("", "at least one"),
        ("COLOR=red", "COLOR"),
        ("ADDR", "ADDR"),
        ("HELO=" + "x" * 256, "HELO"),
        ("HELO=a+0Db", "HELO"),
    ],
)
def test_a_bad_command_is_refused_naming_what_is_wrong(argument: str, named: str) -> None:
    with pytest.raises(XforwardError, match=named):
        parse_xforward(argument)


def test_the_forwarded_address_is_the_client_and_the_peer_its_relay() -> None:
    assert smtp_client(RELAY, {"ADDR": "203.0.113.7"}) == SmtpClient("203.0.113.7", RELAY)
    assert smtp_client(RELAY, {"ADDR": "IPV6:2001:db8::7"}) == SmtpClient("2001:db8::7", RELAY)
    assert smtp_client(RELAY, {}) == SmtpClient(RELAY)


def test_trust_is_by_network_and_an_ipv4_mapped_peer_counts_as_its_ipv4() -> None:
    networks = [ip_network("10.1.0.0/16"), ip_network("127.0.0.1/32")]
    assert is_trusted("10.1.200.3", networks)
    assert is_trusted("::ffff:127.0.0.1", networks)
    assert not is_trusted("10.2.0.1", networks)
    assert not is_trusted("not-an-address", networks)


def test_the_setting_takes_addresses_and_networks() -> None:
    settings = Settings(smtp_trusted_relays="127.0.0.1, 10.0.0.0/8")
    assert settings.smtp_trusted_relays == [ip_network("127.0.0.1/32"), ip_network("10.0.0.0/8")]


def with_relay_server(
    publisher: RecordingPublisher, client: Callable[[int], Any], limit: int = 30
) -> Any:
    clock = SystemClock()
    handler = SupportMailHandler(
        publisher,
        ["support.example.com"],
        clock,
        "smtp://test",
        rate_limit=SenderRateLimit(limit, timedelta(minutes=1), clock),
    )
    return serving(handler, client, trusted_relays=(ip_network(f"{RELAY}/32"),))


def connect(port: int, source: str) -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=(source, 0))
    smtp.ehlo("mx.test")
    return smtp


def relayed(smtp: smtplib.SMTP, client: str, sender: str = "c@acme.example") -> tuple[int, bytes]:
    code, reply = smtp.docmd("XFORWARD", f"NAME=mx.acme.example ADDR={client} PROTO=ESMTP")
    assert code == 250, reply
    smtp.mail(sender)
    smtp.rcpt("soporte@support.example.com")
    return smtp.data(MAIL)


def relayed_once(port: int) -> tuple[int, bytes]:
    with connect(port, RELAY) as smtp:
        return relayed(smtp, "203.0.113.7")


def test_a_trusted_relay_is_offered_xforward_and_its_client_becomes_the_mails_peer() -> None:
    publisher = RecordingPublisher()

    def client(port: int) -> dict[str, Any]:
        with connect(port, RELAY) as smtp:
            offered = smtp.has_extn("xforward") and smtp.esmtp_features["xforward"]
            code, _ = relayed(smtp, "203.0.113.7")
            second, _ = relayed(smtp, "198.51.100.4")
        return {"offered": offered, "codes": (code, second)}

    seen = with_relay_server(publisher, client)

    assert seen["offered"] == "NAME ADDR PORT PROTO HELO IDENT SOURCE"
    assert seen["codes"] == (250, 250)
    spooled = [record["data"] for _, _, record in publisher.published]
    assert [(d["peer"], d["relay"]) for d in spooled] == [
        ("203.0.113.7", RELAY),
        ("198.51.100.4", RELAY),
    ]


def test_the_forwarded_client_reaches_the_received_event() -> None:
    publisher = RecordingPublisher()
    with_relay_server(publisher, relayed_once)

    event = read_spooled(json.dumps(publisher.published[0][2]).encode(), SystemClock().now())
    assert (event.data.peer, event.data.relay) == ("203.0.113.7", RELAY)  # type: ignore[union-attr]


def test_anyone_else_is_not_offered_xforward_and_is_refused_and_counted() -> None:
    publisher = RecordingPublisher()

    def client(port: int) -> dict[str, Any]:
        with connect(port, STRANGER) as smtp:
            offered = smtp.has_extn("xforward")
            refused = smtp.docmd("XFORWARD", "ADDR=203.0.113.7")
            smtp.mail("c@acme.example")
            smtp.rcpt("soporte@support.example.com")
            smtp.data(MAIL)
        return {"offered": offered, "refused": refused}

    seen = with_relay_server(publisher, client)

    assert seen["offered"] is False
    assert seen["refused"][0] == 550
    assert b"XFORWARD" in seen["refused"][1]
    assert [record["data"]["peer"] for _, _, record in publisher.published] == [STRANGER]
    assert publisher.published[0][2]["data"]["relay"] is None


def test_xforward_inside_a_mail_transaction_is_refused() -> None:
    def client(port: int) -> int:
        with connect(port, RELAY) as smtp:
            smtp.mail("c@acme.example")
            return smtp.docmd("XFORWARD", "ADDR=203.0.113.7")[0]

    assert with_relay_server(RecordingPublisher(), client) == 503


def test_the_forwarded_attributes_end_with_the_mail() -> None:
    publisher = RecordingPublisher()

    def client(port: int) -> None:
        with connect(port, RELAY) as smtp:
            relayed(smtp, "203.0.113.7")
            smtp.sendmail("c@acme.example", ["soporte@support.example.com"], MAIL)

    with_relay_server(publisher, client)

    assert [record["data"]["peer"] for _, _, record in publisher.published] == [
        "203.0.113.7",
        RELAY,
    ]


def test_behind_a_trusted_relay_the_rate_limit_is_per_original_client() -> None:
    publisher = RecordingPublisher()

    def client(port: int) -> list[int]:
        with connect(port, RELAY) as smtp:
            codes = [relayed(smtp, "203.0.113.7")[0] for _ in range(3)]
            codes.append(relayed(smtp, "198.51.100.4")[0])
        return codes

    assert with_relay_server(publisher, client, limit=2) == [250, 250, 451, 250]
    assert len(publisher.published) == 3


def test_the_mail_itself_is_stored_unchanged() -> None:
    publisher = RecordingPublisher()
    with_relay_server(publisher, relayed_once)
    assert base64.b64decode(publisher.published[0][2]["data"]["raw_base64"]) == MAIL
