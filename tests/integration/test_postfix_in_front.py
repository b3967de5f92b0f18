"""Postfix in front of ``engine up``, as a support centre runs it: the ticket names the
original client (XFORWARD from a trusted relay), the rate limit is per original client,
XFORWARD from anyone else is refused, and a 451 during a Kafka outage makes Postfix keep
the mail and deliver it once the broker is back: nothing lost, one ticket."""

from __future__ import annotations

import smtplib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from engine.contract import Tier
from engine.contract.topics import TICKET_EVENTS, TIER_TOPICS, declared_topics
from engine.kafka import broker
from engine.kafka.admin import provision
from engine.settings import Settings
from tests.integration.harness import (
    EngineProcess,
    TopicReader,
    engine_env,
    local_broker_settings,
    support_mail,
    wait_until,
)
from tests.integration.postfix import Postfix

SENDER_LIMIT = 3


@pytest.fixture(scope="module")
def front_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A broker of the module's own: the last test stops and restarts it."""
    settings = local_broker_settings(tmp_path_factory.mktemp("broker"))
    broker.start(settings)
    provision(settings.kafka_bootstrap, declared_topics())
    yield settings
    broker.stop(settings)


@pytest.fixture(scope="module")
def front_engine(
    front_broker: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EngineProcess]:
    state = tmp_path_factory.mktemp("engine")
    env = engine_env(
        state,
        front_broker.kafka_bootstrap,
        ENGINE_SMTP_TRUSTED_RELAYS="127.0.0.1",
        ENGINE_SMTP_SENDER_LIMIT_PER_MINUTE=str(SENDER_LIMIT),
    )
    running = EngineProcess(env, state / "engine.log")
    running.start("--bootstrap-servers", front_broker.kafka_bootstrap)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def postfix(front_engine: EngineProcess) -> Iterator[Postfix]:
    instance = Postfix(engine_port=front_engine.smtp_port)
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def events(front_broker: Settings) -> Iterator[TopicReader]:
    reader = TopicReader(front_broker.kafka_bootstrap, TICKET_EVENTS)
    yield reader
    reader.close()


def received(reader: TopicReader, message_id: str) -> list[dict[str, Any]]:
    return reader.matching(
        lambda key, value: (
            value["kind"] == "email.received"
            and value["data"]["message_id"] == message_id.strip("<>")
        )
    )


def outage_mail(sender: str) -> tuple[str, Any]:
    message_id = f"<{uuid.uuid4()}@acme.example>"
    body = "La central está caída desde las 9, no entra ninguna llamada en toda la empresa."
    return message_id, support_mail("Central caída", body, message_id, sender=sender)


def test_a_mail_through_postfix_is_routed_and_names_the_original_client(
    postfix: Postfix, front_broker: Settings, events: TopicReader
) -> None:
    message_id, message = outage_mail("ana@acme.example")
    code, reply = postfix.submit(message, client_address="127.0.0.2")
    assert code == 250, reply

    event = wait_until(
        lambda: received(events, message_id), 60, "the relayed mail's event", postfix.log
    )[0]
    assert event["data"]["peer"] == "127.0.0.2", postfix.log()
    assert event["data"]["relay"] == "127.0.0.1"
    ticket = event["data"]["ticket_id"]
    routed = TopicReader(front_broker.kafka_bootstrap, TIER_TOPICS[Tier.L3])
    try:
        decision = routed.wait_for(lambda key, value: key == ticket, timeout=60)
    finally:
        routed.close()
    assert decision["data"]["ticket"]["priority"] == "P1"


def test_the_rate_limit_applies_per_original_client_behind_postfix(
    postfix: Postfix, events: TopicReader
) -> None:
    sender = f"busy-{uuid.uuid4().hex[:8]}@acme.example"
    flooding = [outage_mail(sender) for _ in range(SENDER_LIMIT + 2)]
    for _, message in flooding:
        assert postfix.submit(message, client_address="127.0.0.3")[0] == 250
    other_id, other = outage_mail(sender)
    assert postfix.submit(other, client_address="127.0.0.4")[0] == 250

    # The other client's mail, same sender, is not held back by the first client's limit.
    wait_until(lambda: received(events, other_id), 60, "the second client's mail", postfix.log)

    def limited() -> list[dict[str, Any]]:
        return postfix.deferred(sender, "4.7.1")

    held = wait_until(
        lambda: len(limited()) == 2 and limited(), 60, "two mails deferred by 4.7.1", postfix.log
    )
    assert len(held) == 2
    accepted = [mid for mid, _ in flooding if received(events, mid)]
    assert len(accepted) == SENDER_LIMIT


def test_xforward_from_anyone_else_is_refused(front_engine: EngineProcess) -> None:
    with smtplib.SMTP(
        "127.0.0.1", front_engine.smtp_port, timeout=10, source_address=("127.0.0.5", 0)
    ) as client:
        client.ehlo("pretender.test")
        assert not client.has_extn("xforward")
        code, reply = client.docmd("XFORWARD", "ADDR=203.0.113.9")
    assert code == 550, reply


def test_a_kafka_outage_keeps_the_mail_in_postfix_until_the_broker_is_back(
    postfix: Postfix, front_broker: Settings, events: TopicReader
) -> None:
    sender = f"outage-{uuid.uuid4().hex[:8]}@acme.example"
    message_id, message = outage_mail(sender)
    broker.stop(front_broker)
    try:
        assert postfix.submit(message, client_address="127.0.0.6")[0] == 250  # Postfix took it

        held = wait_until(
            lambda: postfix.deferred(sender, "451 4.3.0"),
            90,
            "Postfix to keep the mail after a 451",
            postfix.log,
        )
        assert held[0]["queue_name"] == "deferred"
    finally:
        broker.start(front_broker)

    def delivered_after_flush() -> bool:
        if not any(mail["sender"] == sender for mail in postfix.queue()):
            return True
        postfix.flush()  # the engine may still be reconnecting: a 451 keeps it queued
        return False

    wait_until(delivered_after_flush, 180, "Postfix to deliver the kept mail", postfix.log)
    copies = wait_until(
        lambda: received(events, message_id), 120, "the kept mail's event", postfix.log
    )
    # A send that timed out (451) may still land once the broker is back, before Postfix's
    # retry: every copy carries the same event id, and the processor takes it once.
    assert {copy["event_id"] for copy in copies} == {copies[0]["event_id"]}
    assert {copy["data"]["peer"] for copy in copies} == {"127.0.0.6"}
    ticket = copies[0]["data"]["ticket_id"]
    routed = TopicReader(front_broker.kafka_bootstrap, TIER_TOPICS[Tier.L3])
    try:
        routed.wait_for(lambda key, value: key == ticket, timeout=120)
        time.sleep(2)  # a second routing, if there were one, would be right behind it
        assert len(routed.matching(lambda key, value: key == ticket)) == 1
    finally:
        routed.close()
