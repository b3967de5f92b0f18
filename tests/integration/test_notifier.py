"""The customer hears back: a support mail through the running engine, acknowledged through
a real SMTP relay on loopback; the customer's reply to it joins the same ticket as
contact; and the update an agent records reaches the customer by mail. Every party is told:
the people in Cc of the opening mail get the updates, a device's alarm is acknowledged to
the customer's notification contacts, and the agent a ticket is assigned to is mailed."""

from __future__ import annotations

import uuid
from pathlib import Path

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
from engine.workers.agents import load_agents
from tests.integration.harness import (
    PROJECT_ROOT,
    EngineProcess,
    TopicReader,
    engine_env,
    free_port,
    port_open,
    send_mail,
    support_mail,
    wait_until,
)
from tests.integration.mail_relay import RecordingRelay
from tests.integration.snmp_peers import LINK_DOWN, NetSnmp, link_varbinds

COMMUNITY = "parties-community"
DEVICE = "pbx-parties-1"
ACME_CONTACTS = ["noc@acme.example", "ti.guardia@acme.example"]  # deploy/customers.example.yaml


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


def test_every_party_is_told_cc_on_updates_contacts_of_an_alarm_and_the_assigned_agent(
    topics: str, topic_prefix: str, tmp_path: Path, relay: tuple[RecordingRelay, int]
) -> None:
    handler, relay_port = relay
    agents = tmp_path / "agents.yaml"  # around the clock: assigned whatever the day
    agents.write_text(
        (PROJECT_ROOT / "deploy" / "agents.example.yaml")
        .read_text()
        .replace("calendar: business", "calendar: 24x7")
    )
    devices = tmp_path / "devices.yaml"
    devices.write_text(f"devices:\n  - {{address: 127.0.0.1, name: {DEVICE}, customer: acme}}\n")
    env = engine_env(tmp_path / "state", topics, topic_prefix,
        ENGINE_NOTIFY_RELAY=f"127.0.0.1:{relay_port}",
        ENGINE_NOTIFIER_METRICS_PORT=str(free_port()),
        ENGINE_CUSTOMERS_FILE=str(PROJECT_ROOT / "deploy" / "customers.example.yaml"),
        ENGINE_AGENTS_FILE=str(agents),
        ENGINE_SNMP_COMMUNITIES=COMMUNITY,
        ENGINE_SNMP_DEVICES_FILE=str(devices),
    )  # fmt: skip
    engine = EngineProcess(env, tmp_path / "engine.log")
    engine.start("--bootstrap-servers", topics)
    activity = TopicReader(topics, named(TICKET_ACTIVITY, topic_prefix))
    states = TopicReader(topics, named(TICKET_STATE, topic_prefix))
    try:
        sender = f"gerente-{uuid.uuid4().hex[:8]}@acme.example"
        colleague = f"luis-{uuid.uuid4().hex[:8]}@acme.example"
        mail = support_mail(
            "Urgente", "La central está caída, no hay llamadas", unique_id(), sender
        )
        mail["Cc"] = (
            f"Luis <{colleague.upper()}>, soporte@support.example.com, postmaster@acme.example"
        )
        code, reply = send_mail(engine.smtp_port, mail)
        assert code == 250, reply
        ticket = reply.decode().rsplit(" ", 1)[-1]
        states.wait_for(lambda key, value: key == ticket)  # the update needs its ticket

        produce_activity(
            topics, ticket, "Cambiamos la fuente; la central ya responde.", topic_prefix
        )
        news = wait_until(
            lambda: handler.first(lambda m, _: m["Subject"].startswith(f"[#{ticket}] Avance")),
            60, "the agent's update at the relay", on_timeout=engine.log,
        )  # fmt: skip
        assert news["To"] == sender
        assert news["Cc"] == ", ".join([colleague, *ACME_CONTACTS])
        recipients = handler.envelope_recipients[handler.messages.index(news)]
        assert sorted(recipients) == sorted([sender, colleague, *ACME_CONTACTS])

        assigned = activity.wait_for(
            lambda key, value: key == ticket and value["data"]["activity"] == "assigned"
        )["data"]
        agent_address = load_agents(agents).agents[assigned["assignee"]].email
        notice = wait_until(
            lambda: handler.first(
                lambda m, to: to == [agent_address] and m["X-Ticket-Id"] == ticket
            ),
            60, f"the assignment notice to {agent_address}", on_timeout=engine.log,
        )  # fmt: skip
        assert f"Ticket {ticket}" in notice["Subject"] and "(P1, L3)" in notice["Subject"]
        assert "ACME Cobranza" in notice.get_content()

        snmp_metrics = int(env["ENGINE_SNMP_METRICS_PORT"])
        wait_until(lambda: port_open(snmp_metrics), 60, "the SNMP receiver", on_timeout=engine.log)
        NetSnmp(int(env["ENGINE_SNMP_PORT"]), tmp_path / "net-snmp").trap_v2c(
            COMMUNITY, LINK_DOWN, *link_varbinds(7, up=False)
        )
        alarm = wait_until(
            lambda: handler.first(lambda m, _: f"alarma en {DEVICE}" in m["Subject"]),
            60, "the alarm's acknowledgement to acme's contacts", on_timeout=engine.log,
        )  # fmt: skip
        assert alarm["To"] == ", ".join(ACME_CONTACTS) and alarm["Cc"] is None
        assert f"en el equipo {DEVICE}" in alarm.get_content()
    finally:
        activity.close()
        states.close()
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


def test_no_acknowledgement_to_a_forged_or_unknown_sender_but_their_tickets_are_opened(
    topics: str, topic_prefix: str, tmp_path: Path, relay: tuple[RecordingRelay, int]
) -> None:
    handler, relay_port = relay
    notifier_port = free_port()
    env = engine_env(tmp_path / "state", topics, topic_prefix,
        ENGINE_NOTIFY_RELAY=f"127.0.0.1:{relay_port}",
        ENGINE_NOTIFIER_METRICS_PORT=str(notifier_port),
        ENGINE_CUSTOMERS_FILE=str(PROJECT_ROOT / "deploy" / "customers.example.yaml"),
        ENGINE_NOTIFY_ACK_UNKNOWN_SENDERS="false",
    )  # fmt: skip
    engine = EngineProcess(env, tmp_path / "engine.log")
    engine.start("--bootstrap-servers", topics)
    states = TopicReader(topics, named(TICKET_STATE, topic_prefix))

    def withheld(reason: str) -> float:
        labels = {"reason": reason}
        return engine.metric("ticketing_acknowledgements_withheld_total", labels, notifier_port)

    try:
        forged_as = f"gerente-{uuid.uuid4().hex[:8]}@acme.example"
        forged = support_mail("Urgente", "La central está caída", unique_id(), forged_as)
        forged["Authentication-Results"] = (
            "mx.support.example; spf=fail smtp.mailfrom=acme.example; dmarc=fail"
        )
        stranger = f"ofertas-{uuid.uuid4().hex[:8]}@elsewhere.example"
        honest = f"ventas-{uuid.uuid4().hex[:8]}@acme.example"
        tickets = {}
        for sender, message in (
            (forged_as, forged),
            (stranger, support_mail("Headsets", "Cheap headsets for you", unique_id(), stranger)),
            (honest, support_mail("Urgente", "La central está caída", unique_id(), honest)),
        ):
            code, reply = send_mail(engine.smtp_port, message)
            assert code == 250, reply
            tickets[sender] = reply.decode().rsplit(" ", 1)[-1]

        wait_until(  # every mail is still a ticket
            lambda: set(tickets.values()) <= {key for key, _ in states.keyed(lambda k, v: True)},
            60, "the three tickets' states", on_timeout=engine.log,
        )  # fmt: skip
        wait_until(
            lambda: withheld("sender_failed_checks") >= 1 and withheld("unknown_sender") >= 1,
            60, "the notifier to withhold both acknowledgements", on_timeout=engine.log,
        )  # fmt: skip
        wait_until(
            lambda: any(m["To"] == honest for m in handler.messages),
            60, "the honest sender's acknowledgement", on_timeout=engine.log,
        )  # fmt: skip
        told = {str(m["To"]) for m in handler.messages}
        assert forged_as not in told and stranger not in told
    finally:
        states.close()
        engine.stop()
