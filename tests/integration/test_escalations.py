"""After the assignment, on the real broker: a ticket not accepted in time goes to the next
best agent and the lead is mailed; a P1 whose customer update was missed reaches the
manager once, not again after the tier worker is killed and restarted; and with more
tickets than the agents can hold, nobody is ever over capacity and the P1 that came last
is the first to take a freed slot."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from engine.clock import SystemClock
from engine.contract import (
    ActivityType,
    PhoneCallLogged,
    PhoneCallLoggedData,
    Priority,
    TicketActivity,
    TicketActivityData,
    to_json,
)
from engine.contract.identity import event_id, phone_ticket_id
from engine.contract.topics import (
    ESCALATIONS,
    TICKET_ACTIVITY,
    TICKET_EVENTS,
    TICKET_STATE,
    named,
)
from engine.passwords import hash_password
from tests.integration.api_process import TOKEN, post_json
from tests.integration.harness import (
    PROJECT_ROOT,
    SPANISH_OUTAGE,
    EngineProcess,
    ProcessorProcess,
    TopicReader,
    engine_env,
    send_mail,
    support_mail,
    wait_until,
)
from tests.integration.mail_relay import RecordingRelay
from tests.integration.test_tier_workers import WorkersProcess, agents_file, assigned_to

OUTAGE = SPANISH_OUTAGE
MARTA = "marta.solis@desk.example.com"  # deploy/agents.example.yaml: lead of ana, tom, lucía
ROSA = "rosa.medina@desk.example.com"  # its support manager


def open_outage(engine: EngineProcess) -> str:
    mail = support_mail("Urgente: central caída", OUTAGE, f"<{uuid.uuid4()}@acme.example>")
    code, reply = send_mail(engine.smtp_port, mail)
    assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[-1]


def mails_to(relay: RecordingRelay, address: str, containing: str) -> int:
    return sum(
        1
        for message, recipients in zip(
            list(relay.messages), list(relay.envelope_recipients), strict=False
        )
        if address in recipients and containing in message.get_content()
    )


def test_a_ticket_not_accepted_in_time_goes_to_the_next_agent_and_the_lead_is_mailed(
    topics: str, topic_prefix: str, tmp_path: Path, relay: tuple[RecordingRelay, int]
) -> None:
    handler, relay_port = relay
    matrix = (PROJECT_ROOT / "engine" / "workers" / "escalation.yaml").read_text()
    escalation = tmp_path / "escalation.yaml"
    escalation.write_text(matrix.replace("P1: 15 minutes", "P1: 6 seconds"))
    tokens = tmp_path / "tokens"
    tokens.write_text(f"tester:activity:write,tickets:read:{hash_password(TOKEN, 1000)}\n")
    env = engine_env(
        tmp_path / "state", topics, topic_prefix,
        ENGINE_AGENTS_FILE=str(agents_file(tmp_path)),
        ENGINE_ESCALATION_FILE=str(escalation),
        ENGINE_API_TOKENS_FILE=str(tokens),
        ENGINE_CUSTOMERS_FILE=str(PROJECT_ROOT / "deploy" / "customers.example.yaml"),
        ENGINE_NOTIFY_RELAY=f"127.0.0.1:{relay_port}",
    )  # fmt: skip
    engine = EngineProcess(env, tmp_path / "engine.log")
    engine.start("--bootstrap-servers", topics)
    states = TopicReader(topics, named(TICKET_STATE, topic_prefix))
    activity = TopicReader(topics, named(TICKET_ACTIVITY, topic_prefix))
    escalations = TopicReader(topics, named(ESCALATIONS, topic_prefix))
    workers_port = int(env["ENGINE_WORKERS_METRICS_PORT"])
    try:
        wait_until(
            lambda: engine.metric("ticketing_workers_leading", port=workers_port) == 1,
            60, "a tier worker to hold the lease", on_timeout=engine.log,
        )  # fmt: skip
        ticket = open_outage(engine)
        assert assigned_to(states, ticket) == "ana"
        taken = activity.wait_for(
            lambda key, value: key == ticket and value["data"].get("if_assignee") == "ana",
            60,
        )["data"]
        assert (taken["activity"], taken["assignee"], taken["if_unaccepted"]) == (
            "assigned", "marta", True,
        )  # fmt: skip
        assert taken["note"].startswith("not accepted by ana within 6 seconds")
        assert "ana (did not accept it in time)" in taken["explanation"][2]

        accepted = {"activity_id": "accept-1", "activity": "accepted", "actor": "marta"}
        base = f"http://127.0.0.1:{engine.api_port}"
        status, _, answer = post_json(f"{base}/tickets/{ticket}/activity", accepted)
        assert status == 202, answer
        state = states.wait_for(
            lambda key, value: key == ticket and value["data"]["ticket"]["accepted_at"]
        )["data"]["ticket"]
        assert state["assignee"] == "marta"

        told = escalations.wait_for(lambda key, value: key == ticket)["data"]
        assert (told["reason"], told["role"]) == ("not_accepted", "team_lead")
        assert [person["id"] for person in told["recipients"]] == ["marta"]
        assert "must be accepted within 6 seconds" in told["explanation"][1]
        wait_until(
            lambda: mails_to(handler, MARTA, f"key {ticket}:accept:ana:") == 1,
            60, "the lead's mail at the relay", on_timeout=engine.log,
        )  # fmt: skip
        wait_until(
            lambda: engine.metric("ticketing_time_to_accept_seconds_count", {"priority": "P1"},
                                  port=workers_port) == 1,
            30, "the time to accept to be counted",
        )  # fmt: skip
        assert (
            engine.metric(
                "ticketing_reassignments_total", {"reason": "not_accepted"}, port=workers_port
            )
            == 1
        )
    finally:
        for reader in (states, activity, escalations):
            reader.close()
        engine.stop()


def test_a_p1_breach_reaches_the_manager_once_even_after_the_worker_is_killed(
    topics: str, topic_prefix: str, tmp_path: Path, relay: tuple[RecordingRelay, int]
) -> None:
    handler, relay_port = relay
    env = engine_env(
        tmp_path / "state", topics, topic_prefix,
        ENGINE_CUSTOMERS_FILE=str(PROJECT_ROOT / "deploy" / "customers.example.yaml"),
        ENGINE_NOTIFY_RELAY=f"127.0.0.1:{relay_port}",
        # a P1 update is due every 2 hours: 8 s here
        ENGINE_SLA_TIME_SCALE="900",
        ENGINE_SLA_TIME_ORIGIN=datetime.now(UTC).isoformat(),
        ENGINE_SLA_TICK_SECONDS="0.2",
    )  # fmt: skip
    # engine up without ENGINE_AGENTS_FILE runs no workers: the test runs its own
    engine = EngineProcess(env, tmp_path / "engine.log")
    engine.start("--bootstrap-servers", topics)
    workers_env = {**env, "ENGINE_AGENTS_FILE": str(agents_file(tmp_path))}
    worker = WorkersProcess(workers_env, tmp_path / "workers-1.log")
    escalations = TopicReader(topics, named(ESCALATIONS, topic_prefix))
    states = TopicReader(topics, named(TICKET_STATE, topic_prefix))

    def told(ticket: str) -> Counter[str]:
        return Counter(
            value["data"]["dedup_key"] for _, value in escalations.keyed(lambda k, v: k == ticket)
        )

    try:
        wait_until(worker.leading, 60, "the tier worker to hold the lease")
        ticket = open_outage(engine)
        assert assigned_to(states, ticket) == "ana"
        breach = f"{ticket}:UPD-P1:1:1"
        wait_until(
            lambda: told(ticket)[f"{breach}:manager"] == 1,
            90, "the breach's escalation to the manager", on_timeout=worker.log,
        )  # fmt: skip
        assert {key for key in told(ticket) if key.startswith(breach)} == {
            f"{breach}:assignee", f"{breach}:team_lead", f"{breach}:manager",
        }  # fmt: skip
        wait_until(
            lambda: mails_to(handler, ROSA, f"key {breach}:manager") == 1,
            60, "the manager's mail at the relay", on_timeout=engine.log,
        )  # fmt: skip

        worker.kill()
        restarted = WorkersProcess(workers_env, tmp_path / "workers-2.log")
        try:
            wait_until(restarted.leading, 60, "the restarted worker to hold the lease")
            # The restarted worker takes the next step (the breach repeated, 8 s later),
            # so it has read the alerts and the steps told before it.
            wait_until(
                lambda: told(ticket)[f"{ticket}:UPD-P1:1:2:manager"] == 1,
                90, "the repeated breach told by the restarted worker",
                on_timeout=restarted.log,
            )  # fmt: skip
            assert told(ticket)[f"{breach}:manager"] == 1
            assert max(told(ticket).values()) == 1, told(ticket).most_common(3)
            assert mails_to(handler, ROSA, f"key {breach}:manager") == 1
        finally:
            restarted.stop()
    finally:
        worker.stop()
        escalations.close()
        states.close()
        engine.stop()


def phone_ticket(summary: str) -> tuple[str, bytes]:
    call = uuid.uuid4().hex
    ticket = phone_ticket_id(call)
    record = PhoneCallLogged(
        event_id=event_id("phone", call), occurred_at=SystemClock().now(),
        source="test-phone-system",
        data=PhoneCallLoggedData(
            ticket_id=ticket, call_id=call, caller="+52 55 5555 0000", customer_id=None,
            subject="Llamada", summary=summary, agent="operadora", suggested_priority=None,
        ),
    )  # fmt: skip
    return ticket, to_json(record)


def resolution(ticket: str) -> bytes:
    return to_json(
        TicketActivity(
            event_id=event_id("ticket.activity", f"{ticket}:resolved:test"),
            occurred_at=SystemClock().now(),
            source="test",
            data=TicketActivityData(ticket_id=ticket, activity=ActivityType.RESOLVED, actor="test"),
        )
    )


THREE_AGENTS = """\
agents:
  - {id: ines, name: Inés, email: ines@desk.example, tiers: [L1, L2, L3], languages: [es, en],
     skills: [campaigns, dialer, ivr, pbx, pbx_configuration, phones, sip, trunks, voice_quality],
     calendar: 24x7, capacity: 5}
  - {id: olga, name: Olga, email: olga@desk.example, tiers: [L1, L2, L3], languages: [es, en],
     skills: [campaigns, dialer, ivr, pbx, pbx_configuration, phones, sip, trunks, voice_quality],
     calendar: 24x7, capacity: 5}
  - {id: raul, name: Raúl, email: raul@desk.example, tiers: [L1, L2, L3], languages: [es, en],
     skills: [campaigns, dialer, ivr, pbx, pbx_configuration, phones, sip, trunks, voice_quality],
     calendar: 24x7, capacity: 5}
managers:
  - {id: rosa, name: Rosa, email: rosa@desk.example}
"""


def test_fifty_tickets_for_three_agents_of_five_nobody_over_capacity_and_a_late_p1_first(
    topics: str, topic_prefix: str, tmp_path: Path
) -> None:
    agents = tmp_path / "agents.yaml"
    agents.write_text(THREE_AGENTS)
    env = engine_env(tmp_path / "state", topics, topic_prefix, ENGINE_AGENTS_FILE=str(agents))
    processor = ProcessorProcess(env, tmp_path / "processor.log")
    worker = WorkersProcess(env, tmp_path / "workers.log")
    states = TopicReader(topics, named(TICKET_STATE, topic_prefix))
    activity = TopicReader(topics, named(TICKET_ACTIVITY, topic_prefix))
    producer = KafkaProducer(bootstrap_servers=topics, acks="all")
    events = named(TICKET_EVENTS, topic_prefix)

    def latest(tickets: set[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for _, value in states.keyed(lambda k, v: k in tickets):
            state = value["data"]["ticket"]
            found[state["ticket_id"]] = state
        return found

    def loads(tickets: set[str]) -> Counter[str]:
        return Counter(
            state["assignee"]
            for state in latest(tickets).values()
            if state["assignee"] and state["status"] != "resolved"
        )

    try:
        processor.wait_assigned()
        wait_until(worker.leading, 60, "the tier worker to hold the lease", on_timeout=worker.log)
        questions = [
            phone_ticket(f"Pregunta {n}: cómo cambio el mensaje de bienvenida del menú.")
            for n in range(49)
        ]
        for ticket, value in questions:
            producer.send(events, key=ticket.encode(), value=value)
        producer.flush(30)
        every = {ticket for ticket, _ in questions}
        wait_until(lambda: sum(loads(every).values()) == 15, 90, "15 tickets assigned")
        outage, value = phone_ticket(OUTAGE)
        producer.send(events, key=outage.encode(), value=value)
        producer.flush(30)
        every.add(outage)
        wait_until(lambda: outage in latest(every), 60, "the outage to be triaged")
        assert latest(every)[outage]["priority"] == Priority.P1
        time.sleep(2)  # the workers had time to take it, were anyone able
        assert latest(every)[outage]["assignee"] is None
        assert max(loads(every).values()) == 5

        freed = next(t for t, state in latest(every).items() if state["assignee"] == "olga")
        producer.send(events, key=freed.encode(), value=resolution(freed))
        producer.flush(30)
        assert assigned_to(states, outage) == "olga"
        # the freed slot went to the P1 and to nothing else: 34 older tickets still wait
        assignments = activity.keyed(
            lambda k, v: k in every and v["data"]["activity"] == "assigned"
        )
        assert len(assignments) == 16
        assert max(loads(every).values()) == 5
        assert sum(1 for state in latest(every).values() if not state["assignee"]) == 49 - 15
    finally:
        producer.close()
        states.close()
        activity.close()
        worker.stop()
        processor.stop()
