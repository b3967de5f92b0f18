"""The mail spool against the real broker: a 250 means the mail is on Kafka whole, whether
or not the mail parser runs; the parser, killed and started again, loses none of it.

``engine smtp`` and ``engine mail-parser`` run here as separate processes, as a
production supervisor runs them, so that one can be killed while the other works.
"""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError

from engine.clock import SystemClock
from engine.contract import to_json
from engine.contract.topics import DEAD_LETTERS, MAIL_SPOOL, TICKET_EVENTS, named
from engine.ingest.mail.identity import mail_identity
from engine.ingest.mail.parser_service import MailParser
from engine.ingest.mail.spool import spooled_mail
from engine.settings import Settings
from tests.integration.harness import (
    TopicReader,
    engine_env,
    port_open,
    send_mail,
    support_mail,
    wait_until,
)

SENDER = "cliente@acme.example"


class Component:
    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name, self.env, self.log = name, env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engine", self.name],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


@pytest.fixture
def components(
    topics: str, topic_prefix: str, tmp_path: Path
) -> Iterator[tuple[Component, Component, str]]:
    env = engine_env(tmp_path, topics, topic_prefix)
    smtp = Component("smtp", env, tmp_path / "smtp.log")
    parser = Component("mail-parser", env, tmp_path / "mail-parser.log")
    smtp.start()
    port = int(env["ENGINE_SMTP_PORT"])
    wait_until(lambda: port_open(port), 60, "engine smtp to listen")
    yield smtp, parser, topics
    parser.stop()
    smtp.stop()


def send(port: int, count: int) -> dict[str, str]:
    """Mails of new threads; their Message-IDs by the ticket each 250 named."""
    tickets = {}
    for _ in range(count):
        message_id = f"spool-{uuid.uuid4()}@acme.example"
        mail = support_mail("La central no arranca", "No hay llamadas.", f"<{message_id}>", SENDER)
        code, reply = send_mail(port, mail)
        assert code == 250, reply
        tickets[reply.decode().rsplit(" ", 1)[-1]] = message_id
    return tickets


def events_of(events: TopicReader, tickets: dict[str, str]) -> dict[str, int]:
    """How many email.received events each ticket has (0 for none yet)."""
    found = events.matching(
        lambda key, value: key in tickets and tickets[key] == value["data"].get("message_id")
    )
    return {
        ticket: sum(1 for value in found if value["data"]["ticket_id"] == ticket)
        for ticket in tickets
    }


def test_mail_accepted_while_the_parser_is_down_is_read_when_it_is_back_and_none_lost(
    components: tuple[Component, Component, str],
    topic_prefix: str,
) -> None:
    smtp, parser, bootstrap = components
    port = int(smtp.env["ENGINE_SMTP_PORT"])
    spool = TopicReader(bootstrap, named(MAIL_SPOOL, topic_prefix))
    events = TopicReader(bootstrap, named(TICKET_EVENTS, topic_prefix))
    try:
        first = send(port, 5)  # no parser yet: the 250s come from the spool alone
        spooled = spool.matching(lambda key, value: key in first)
        assert {value["data"]["ticket_id"] for value in spooled} == set(first)
        assert all(count == 0 for count in events_of(events, first).values())

        parser.start()
        wait_until(
            lambda: all(events_of(events, first).values()), 60, "the spooled mails' events",
            on_timeout=lambda: parser.log.read_text(errors="replace")[-3000:],
        )  # fmt: skip

        parser.kill()  # no clean stop: whatever it had not committed is read again
        second = send(port, 5)
        parser.start()
        wait_until(
            lambda: all(events_of(events, second).values()), 60, "the mails sent meanwhile",
            on_timeout=lambda: parser.log.read_text(errors="replace")[-3000:],
        )  # fmt: skip
    finally:
        spool.close()
        events.close()


def test_a_spool_record_that_holds_no_mail_is_dead_lettered_and_the_next_mail_still_read(
    components: tuple[Component, Component, str],
    topic_prefix: str,
) -> None:
    smtp, parser, bootstrap = components
    port = int(smtp.env["ENGINE_SMTP_PORT"])
    parser.start()
    bad = f'{{"kind": "email.spooled", "note": "{uuid.uuid4()}"}}'.encode()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(named(MAIL_SPOOL, topic_prefix), key=b"T-AAAAAAAAAAAAA", value=bad).get(
        timeout=30
    )
    producer.close()
    letters, events = (
        TopicReader(bootstrap, named(DEAD_LETTERS, topic_prefix)),
        TopicReader(bootstrap, named(TICKET_EVENTS, topic_prefix)),
    )
    try:
        letter = letters.wait_for(
            lambda key, value: (
                value["data"]["origin"] == named(MAIL_SPOOL, topic_prefix)
                and base64.b64decode(value["data"]["payload_base64"]) == bad
            )
        )
        assert "invalid spool record" in letter["data"]["reason"] and letter["data"]["field"]
        after = send(port, 1)
        wait_until(lambda: all(events_of(events, after).values()), 60, "the next mail's event")
    finally:
        letters.close()
        events.close()


class RefusesFirstSend:
    """A real producer whose first send fails as Kafka would when it does not answer."""

    def __init__(self, producer: KafkaProducer) -> None:
        self.producer, self.refused = producer, False

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> Any:
        if not self.refused:
            self.refused = True
            raise KafkaTimeoutError("Kafka did not answer")
        return self.producer.send(topic, key=key, value=value)

    def close(self, timeout: float | None = None) -> None:
        self.producer.close(timeout=timeout)


def test_a_batch_kafka_did_not_take_is_read_again_and_nothing_skipped(
    own_broker: Settings, tmp_path: Path
) -> None:
    bootstrap = own_broker.kafka_bootstrap
    raws = [
        support_mail("Sin tono", "No hay tono.", f"<retry-{n}@acme.example>", SENDER).as_bytes()
        for n in range(3)
    ]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for raw in raws:
            record = spooled_mail(
                raw, mail_identity(raw), mail_from=SENDER,
                rcpt_to=("soporte@support.example.com",), peer="127.0.0.1",
                received_at=SystemClock().now(), source="smtp://test", archived=False,
            )  # fmt: skip
            producer.send(
                MAIL_SPOOL,
                key=record.data.ticket_id.encode(),
                value=to_json(record),
            )
        producer.flush()
    finally:
        producer.close()
    settings = Settings(
        bootstrap_servers=bootstrap, state_dir=tmp_path, app_id=f"test-{uuid.uuid4().hex[:8]}"
    )
    flaky = RefusesFirstSend(KafkaProducer(bootstrap_servers=bootstrap, acks="all"))
    parser = MailParser(settings, SystemClock(), producer=flaky)
    events = TopicReader(bootstrap, TICKET_EVENTS)
    wanted = {mail_identity(raw).ticket_id: f"retry-{n}@acme.example" for n, raw in enumerate(raws)}
    try:

        def parsed_all() -> bool:
            parser.step()
            return all(events_of(events, wanted).values())

        wait_until(parsed_all, 60, "every spooled mail's event after a refused batch")
        assert flaky.refused
    finally:
        events.close()
        parser.close()


def test_a_mail_whose_event_is_too_large_for_its_topic_is_dead_lettered_not_retried_forever(
    components: tuple[Component, Component, str],
    topic_prefix: str,
) -> None:
    smtp, parser, bootstrap = components
    port = int(smtp.env["ENGINE_SMTP_PORT"])
    parser.start()
    # 200,000 four-byte characters: the event carries them as text and as new_text, over
    # the 1 MB a ticket topic takes; the mail itself (800 KB) is well within the limit.
    huge = support_mail("Registro", "", f"<{uuid.uuid4()}@acme.example>")
    huge.set_content(("\U0001f4de" * 1000 + "\n") * 200, cte="8bit")
    code, reply = send_mail(port, huge)
    assert code == 250, reply
    ticket = reply.decode().rsplit(" ", 1)[-1]
    after = send(port, 1)
    letters, events = (
        TopicReader(bootstrap, named(DEAD_LETTERS, topic_prefix)),
        TopicReader(bootstrap, named(TICKET_EVENTS, topic_prefix)),
    )
    try:
        letter = letters.wait_for(
            lambda key, value: (
                value["data"]["origin"] == named(MAIL_SPOOL, topic_prefix)
                and ticket.encode() in base64.b64decode(value["data"]["payload_base64"])
            ),
            timeout=90,
        )
        assert "a ticket topic takes" in letter["data"]["reason"]
        wait_until(lambda: all(events_of(events, after).values()), 60, "the next mail's event")
    finally:
        letters.close()
        events.close()
