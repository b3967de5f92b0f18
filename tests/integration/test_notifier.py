"""The customer hears back: a support mail through the running engine, acknowledged through
a real SMTP relay on loopback; the customer's reply to it joins the same ticket as
contact; and the update an agent records reaches the customer by mail."""

from __future__ import annotations

import asyncio
import email
import threading
import uuid
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from engine.clock import SystemClock
from engine.contract import (
    ActivityType,
    Channel,
    TicketActivity,
    TicketActivityData,
    Tier,
    to_json,
)
from engine.contract.topics import TICKET_ACTIVITY, TICKET_EVENTS, TICKET_STATE, TIER_TOPICS, named
from tests.integration.harness import (
    EngineProcess,
    TopicReader,
    engine_env,
    free_port,
    send_mail,
    support_mail,
    wait_until,
)


class RecordingRelay:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.messages.append(email.message_from_bytes(raw, policy=policy.default))
        return "250 OK"


@pytest.fixture
def relay() -> Iterator[tuple[RecordingRelay, int]]:
    handler = RecordingRelay()
    loop = asyncio.new_event_loop()
    port = free_port()
    server = loop.run_until_complete(
        loop.create_server(lambda: SMTP(handler, loop=loop), "127.0.0.1", port)
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield handler, port
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()


def test_a_new_ticket_is_acknowledged_and_a_reply_to_the_notice_joins_it(
    topics: str, topic_prefix: str, tmp_path: Path, relay: tuple[RecordingRelay, int]
) -> None:
    handler, relay_port = relay
    env = engine_env(tmp_path / "state", topics, topic_prefix,
        ENGINE_NOTIFY_RELAY=f"127.0.0.1:{relay_port}",
        ENGINE_NOTIFIER_METRICS_PORT=str(free_port()),
    )  # fmt: skip
    engine = EngineProcess(env, tmp_path / "engine.log")
    engine.start("--bootstrap-servers", topics)
    reader = TopicReader(topics, named(TIER_TOPICS[Tier.L3], topic_prefix))
    states = TopicReader(topics, named(TICKET_STATE, topic_prefix))
    activity = TopicReader(topics, named(TICKET_ACTIVITY, topic_prefix))
    try:
        sender = f"gerente-{uuid.uuid4().hex[:8]}@acme.example"
        code, reply = send_mail(
            engine.smtp_port,
            support_mail("Urgente", "La central está caída, no hay llamadas", unique_id(), sender),
        )
        assert code == 250, reply
        ticket = reply.decode().rsplit(" ", 1)[-1]
        reader.wait_for(lambda key, value: key == ticket)

        notice = wait_until(
            lambda: next((m for m in handler.messages if m["To"] == sender), None),
            60,
            "the acknowledgement at the relay",
            on_timeout=engine.log,
        )
        assert notice["Subject"].startswith(f"[#{ticket}] Recibimos su solicitud")
        assert notice["Auto-Submitted"] == "auto-replied"
        assert "cada 2 horas" in notice.get_content()

        answer = support_mail(
            "Más datos", "Reiniciamos el servidor y sigue igual.", unique_id(), sender
        )
        answer["In-Reply-To"] = notice["Message-ID"]
        answer["References"] = notice["Message-ID"]
        code, reply = send_mail(engine.smtp_port, answer)
        assert code == 250, reply
        assert reply.decode().endswith(ticket)
        replied = states.wait_for(
            lambda key, value: key == ticket and value["data"]["ticket"]["event_count"] == 2
        )["data"]["ticket"]
        assert replied["last_customer_contact_at"] is not None
        assert (replied["informed_count"], replied["last_informed_at"]) == (0, None)
        contact = activity.wait_for(lambda key, value: key == ticket)
        assert contact["data"]["activity"] == "customer_replied"
        assert sum(1 for m in handler.messages if m["To"] == sender) == 1  # no second ack

        produce_activity(
            topics, ticket, "Cambiamos la fuente; la central ya responde.", topic_prefix
        )

        informed = states.wait_for(
            lambda key, value: key == ticket and value["data"]["ticket"]["informed_count"] == 1
        )
        assert informed["data"]["ticket"]["last_informed_at"] is not None
        news = wait_until(
            lambda: next((m for m in handler.messages if "Avance" in m["Subject"]), None),
            60,
            "the agent's update at the relay",
            on_timeout=engine.log,
        )
        assert news["To"] == sender and news["Subject"].startswith(f"[#{ticket}]")
        assert news.get_content().startswith("Cambiamos la fuente; la central ya responde.")
    finally:
        reader.close()
        states.close()
        activity.close()
        engine.stop()


def unique_id() -> str:
    return f"<{uuid.uuid4()}@acme.example>"


def produce_activity(bootstrap: str, ticket: str, message: str, topic_prefix: str) -> None:
    """What an agent's tool does: a customer_informed activity on the ticket events topic."""
    from kafka import KafkaProducer

    record = TicketActivity(
        event_id=f"activity:{uuid.uuid4()}",
        occurred_at=SystemClock().now(),
        source="test-agent-tool",
        data=TicketActivityData(
            ticket_id=ticket,
            activity=ActivityType.CUSTOMER_INFORMED,
            actor="ana@support.example.com",
            message=message,
            informed_via=Channel.EMAIL,
        ),
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(
        named(TICKET_EVENTS, topic_prefix), key=ticket.encode(), value=to_json(record)
    ).get(timeout=30)
    producer.close()
