"""No single record stops a consumer: each of the mail parser, the notifier and the SNMP
receiver, run alone as ``engine up`` runs it against the real broker, is fed hostile input
followed by an ordinary one, and the ordinary one still comes through."""

from __future__ import annotations

import base64
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaProducer

from engine.contract import Tier, to_json
from engine.contract.topics import (
    DEAD_LETTERS,
    MAIL_SPOOL,
    MAIL_SPOOL_MAX_BYTES,
    SNMP_TRAPS,
    TICKET_EVENTS,
    TIER_TOPICS,
    named,
)
from engine.ingest.mail.identity import mail_identity
from engine.ingest.mail.spool import spooled_mail
from tests.integration.harness import (
    PROJECT_ROOT,
    ComponentProcess,
    TopicReader,
    engine_env,
    free_port,
    port_open,
    wait_until,
)
from tests.integration.mail_relay import RecordingRelay
from tests.integration.snmp_peers import encoded_link_trap, rejected
from tests.unit.notify.test_notices import routed

COMMUNITY = "pills-community"


def producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap, max_request_size=MAIL_SPOOL_MAX_BYTES + 64 * 1024
    )


def spooled(raw: bytes) -> bytes:
    record = spooled_mail(
        raw, mail_identity(raw), mail_from="cliente@acme.example",
        rcpt_to=("soporte@support.example.com",), peer="127.0.0.1",
        received_at=datetime.now(UTC), source="smtp://pills", archived=False,
    )  # fmt: skip
    return to_json(record)


def mail(message_id: str, headers: bytes, body: bytes) -> bytes:
    return (
        b"From: Cliente <cliente@acme.example>\r\nTo: soporte@support.example.com\r\n"
        b"Subject: Central caida\r\nMessage-ID: <" + message_id.encode() + b">\r\n"
        + headers + b"\r\n" + body
    )  # fmt: skip


def test_the_mail_parser_reads_past_slow_and_oversized_mail(
    topics: str, topic_prefix: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    html = b"Content-Type: text/html; charset=utf-8\r\n"
    emoji = ("\U0001f4de" * 1000 + "\n").encode() * 2500  # an event of over 1 MB
    hostile = [
        mail(f"script-{run}@acme.example", html, b"<script" * 90_000),  # 630 KB
        mail(f"params-{run}@acme.example", b"Content-Type: text/plain" + b";" * 100_000 + b"\r\n",
             b"hola\r\n"),
        mail(f"huge-{run}@acme.example", b"Content-Type: text/plain; charset=utf-8\r\n", emoji),
    ]  # fmt: skip
    ordinary = mail(f"ok-{run}@acme.example", b"", b"No entran llamadas desde esta manana.\r\n")
    spool = producer(topics)
    for raw in (*hostile, ordinary):  # one partition: the ordinary mail waits behind them
        spool.send(named(MAIL_SPOOL, topic_prefix), spooled(raw), key=b"pills", partition=0)
    spool.flush()
    spool.close()
    env = engine_env(tmp_path / "state", topics, topic_prefix)
    parser = ComponentProcess("mail-parser", env, tmp_path / "mail-parser.log")
    events = TopicReader(topics, named(TICKET_EVENTS, topic_prefix))
    letters = TopicReader(topics, named(DEAD_LETTERS, topic_prefix))
    try:
        wanted = {f"ok-{run}@acme.example", f"script-{run}@acme.example"}
        wait_until(
            lambda: (
                wanted <= {v["data"].get("message_id") for _, v in events.keyed(lambda *_: True)}
            ),
            120,
            "the ordinary mail's event behind the hostile ones",
            on_timeout=parser.log,
        )
        found = letters.wait_for(lambda _k, v: "2,000" in v["data"]["reason"], 60)
        assert found["data"]["field"] == "header Content-Type"
        huge = letters.wait_for(lambda _k, v: v["data"]["payload_truncated"], 60)
        assert huge["data"]["original"]["topic"] == named(MAIL_SPOOL, topic_prefix)
        assert len(base64.b64decode(huge["data"]["payload_base64"])) < huge["data"]["payload_size"]
    finally:
        parser.stop()
        events.close()
        letters.close()


def test_the_notifier_dead_letters_a_notice_it_cannot_send_and_acknowledges_the_next(
    topics: str, topic_prefix: str, tmp_path: Path, relay: tuple[RecordingRelay, int]
) -> None:
    handler, relay_port = relay
    topic = named(TIER_TOPICS[Tier.L3], topic_prefix)
    ordinary = f"ana-{uuid.uuid4().hex[:8]}@acme.example"
    # Three tickets (a notifier sends one acknowledgement per ticket), in order on one partition.
    unsendable = routed("josé@acme.example", ticket_id="T-AAAAAAAAAAAAA")  # no SMTPUTF8 relay
    broken = routed("ana@acme.example", ticket_id="T-BBBBBBBBBBBBB")
    ticket = broken.data.ticket.model_copy(update={"subject": "Caida\r\nBcc: x@evil.example"})
    broken = broken.model_copy(update={"data": broken.data.model_copy(update={"ticket": ticket})})
    out = producer(topics)
    for record in (unsendable, broken, routed(ordinary, ticket_id="T-CCCCCCCCCCCCC")):
        out.send(topic, to_json(record), key=record.data.ticket_id.encode(), partition=0)
    out.flush()
    out.close()
    env = engine_env(tmp_path / "state", topics, topic_prefix,
        ENGINE_NOTIFY_RELAY=f"127.0.0.1:{relay_port}",
        ENGINE_NOTIFIER_METRICS_PORT=str(free_port()),
        ENGINE_CUSTOMERS_FILE=str(PROJECT_ROOT / "deploy" / "customers.example.yaml"),
    )  # fmt: skip
    notifier = ComponentProcess("notifier", env, tmp_path / "notifier.log")
    letters = TopicReader(topics, named(DEAD_LETTERS, topic_prefix))
    try:
        wait_until(
            lambda: handler.first(lambda m, _to: m["To"] == ordinary),
            120,
            "the ordinary acknowledgement at the relay",
            on_timeout=notifier.log,
        )
        letter = letters.wait_for(lambda _k, v: "SMTPUTF8" in v["data"]["reason"], 30)
        assert letter["data"]["original"]["topic"] == topic
        one_line = handler.first(lambda m, _to: "Bcc" in (m["Subject"] or ""))
        assert one_line is not None and one_line["Bcc"] is None
        assert notifier.process.poll() is None
    finally:
        notifier.stop()
        letters.close()


def test_the_snmp_receiver_keeps_every_valid_trap_of_a_batch_with_poisoned_ones(
    topics: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = engine_env(tmp_path / "state", topics, topic_prefix, ENGINE_SNMP_COMMUNITIES=COMMUNITY)
    receiver = ComponentProcess("snmp", env, tmp_path / "snmp.log")
    port, metrics = int(env["ENGINE_SNMP_PORT"]), int(env["ENGINE_SNMP_METRICS_PORT"])
    audit = TopicReader(topics, named(SNMP_TRAPS, topic_prefix))
    long_oid = "1.3.6.1.4.1.9." + ".".join(["1"] * 1000)
    poisoned = [
        encoded_link_trap(COMMUNITY, 9000, 9000, markers=((long_oid, "deep"),)),
        encoded_link_trap(COMMUNITY, 9001, 9001, markers=((f"1.3.6.1.4.1.9.{10**1300}", "x"),)),
        b"\x30\x84\xff\xff\xff\xff\x02\x01\x01",  # a length no decoder can honour
    ]
    try:
        wait_until(lambda: port_open(metrics), 60, "the SNMP receiver", on_timeout=receiver.log)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for n in range(300):
            sender.sendto(encoded_link_trap(COMMUNITY, n % 7 + 1, 1 + n), ("127.0.0.1", port))
            if n % 100 == 50:
                for datagram in poisoned:
                    sender.sendto(datagram, ("127.0.0.1", port))
        sender.close()

        def valid_ones() -> int:
            return len(audit.matching(lambda _k, v: 1 <= v["data"]["request_id"] <= 300))

        wait_until(lambda: valid_ones() == 300, 90, "every valid trap", on_timeout=receiver.log)
        wait_until(lambda: rejected(metrics, "oid_limit") == 6, 30, "the poisoned traps counted")
        assert receiver.process.poll() is None
    finally:
        receiver.stop()
        audit.close()
