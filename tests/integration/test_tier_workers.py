"""The tier workers on the real broker: a routed ticket reaches the best qualified agent who
can take it, with the reasons; presence set through the API holds tickets back and lets
them go; two workers in one group assign every ticket once, even when the one that holds
the lease is killed mid-stream."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from engine.clock import SystemClock
from engine.contract import PhoneCallLogged, PhoneCallLoggedData, to_json
from engine.contract.identity import event_id, phone_ticket_id
from engine.contract.topics import TICKET_ACTIVITY, TICKET_EVENTS, TICKET_STATE, named
from engine.passwords import hash_password
from tests.integration.api_process import TOKEN, get_json, post_json
from tests.integration.harness import (
    PROJECT_ROOT,
    ComponentProcess,
    EngineProcess,
    ProcessorProcess,
    TopicReader,
    engine_env,
    free_port,
    send_mail,
    support_mail,
    wait_until,
)

ALWAYS_AT_WORK = "calendar: 24x7"


def agents_file(folder: Path, capacity: int | None = None) -> Path:
    """The example directory (six agents), working around the clock so the test does not
    depend on the day it runs; ``capacity`` replaces every agent's."""
    text = (PROJECT_ROOT / "deploy" / "agents.example.yaml").read_text()
    text = text.replace("calendar: business", ALWAYS_AT_WORK)
    if capacity is not None:
        text = "\n".join(
            f"    capacity: {capacity}" if line.startswith("    capacity:") else line
            for line in text.splitlines()
        )
    path = folder / "agents.yaml"
    path.write_text(text)
    return path


def assigned_to(states: TopicReader, ticket: str, timeout: float = 60) -> str:
    state = states.wait_for(
        lambda key, value: key == ticket and value["data"]["ticket"]["assignee"] is not None,
        timeout,
    )
    return str(state["data"]["ticket"]["assignee"])


def test_an_outage_reaches_the_pbx_specialist_who_speaks_spanish_and_presence_holds_work(
    topics: str, topic_prefix: str, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(
        f"tester:presence:write,activity:write,tickets:read:{hash_password(TOKEN, 1000)}\n"
    )
    env = engine_env(
        tmp_path / "state", topics, topic_prefix,
        ENGINE_AGENTS_FILE=str(agents_file(tmp_path)),
        ENGINE_API_TOKENS_FILE=str(tokens),
        ENGINE_CUSTOMERS_FILE=str(PROJECT_ROOT / "deploy" / "customers.example.yaml"),
    )  # fmt: skip
    engine = EngineProcess(env, tmp_path / "engine.log")
    engine.start("--bootstrap-servers", topics)
    states = TopicReader(topics, named(TICKET_STATE, topic_prefix))
    activity = TopicReader(topics, named(TICKET_ACTIVITY, topic_prefix))
    workers_port = int(env["ENGINE_WORKERS_METRICS_PORT"])
    base = f"http://127.0.0.1:{engine.api_port}"
    try:
        wait_until(
            lambda: engine.metric("ticketing_workers_leading", port=workers_port) == 1,
            60, "a tier worker to hold the lease", on_timeout=engine.log,
        )  # fmt: skip
        sent = time.monotonic()
        code, reply = send_mail(
            engine.smtp_port,
            support_mail(
                "Urgente: central caída",
                "La central está caída desde las 9, no entra ni sale ninguna llamada en "
                "toda la empresa. Somos 60 personas sin teléfono.",
                f"<{uuid.uuid4()}@acme.example>",
            ),
        )
        assert code == 250, reply
        ticket = reply.decode().rsplit(" ", 1)[-1]
        assert assigned_to(states, ticket) == "ana"  # L3, pbx, Spanish; marta too, later by id
        print(f"assigned {time.monotonic() - sent:.2f}s after the mail was accepted")
        record = activity.wait_for(
            lambda key, value: key == ticket and value["data"]["activity"] == "assigned"
        )["data"]
        assert record["actor"] == "tier-workers"
        why, passed = record["explanation"]
        assert why.startswith("assigned to ana (Ana Ruiz): L3, skills pbx, speaks es")
        assert "tom (lacks skill pbx)" in passed and "marta (" in passed
        # ana accepts it: signing out below does not give it back (that is for tickets
        # not accepted yet, tests/integration/test_escalations.py)
        accepted = {"activity_id": "accept-1", "activity": "accepted", "actor": "ana"}
        assert post_json(f"{base}/tickets/{ticket}/activity", accepted)[0] == 202
        states.wait_for(lambda key, value: key == ticket and value["data"]["ticket"]["accepted_at"])

        for agent in ("ana", "marta", "tom"):
            leaving = {"presence": "signed_out", "note": "end of shift"}
            status, _, answer = post_json(f"{base}/agents/{agent}/presence", leaving)
            assert (status, answer["presence"]) == (202, "signed_out")
        wait_until(
            lambda: {a["standing"] for a in _l3(engine)["agents"]} == {"signed out"},
            30, "the API to see L3 signed out",
        )  # fmt: skip
        code, reply = send_mail(
            engine.smtp_port,
            support_mail(
                "Sin servicio",
                "Ninguna extensión tiene tono, la central no responde y no podemos atender "
                "a ningún cliente.",
                f"<{uuid.uuid4()}@acme.example>",
            ),
        )
        second = reply.decode().rsplit(" ", 1)[-1]
        waiting = wait_until(
            lambda: (q := _l3(engine))["waiting"]["P1"] == 1 and q,
            60, "the second outage to wait in L3's queue",
        )  # fmt: skip
        assert waiting["oldest_waiting_seconds"] >= 0
        assert (
            states.matching(
                lambda key, value: key == second and value["data"]["ticket"]["assignee"]
            )
            == []
        )
        assert post_json(f"{base}/agents/marta/presence", {"presence": "available"})[0] == 202
        assert assigned_to(states, second) == "marta"
        queue = get_json(f"{base}/agents/marta/queue")
        wait_until(
            lambda: [t["ticket_id"] for t in get_json(f"{base}/agents/marta/queue")
                     ["tickets"]] == [second],
            30, "marta's queue to show the ticket",
        )  # fmt: skip
        assert queue["agent"]["capacity"] == 4
        assert engine.metric("ticketing_assignments_total", {"tier": "L3", "priority": "P1"},
                             port=workers_port) == 2  # fmt: skip
    finally:
        states.close()
        activity.close()
        engine.stop()


def _l3(engine: EngineProcess) -> dict[str, Any]:
    queues = get_json(f"http://127.0.0.1:{engine.api_port}/queues")
    return next(q for q in queues["tiers"] if q["tier"] == "L3")


def _phone_calls(bootstrap: str, topic_prefix: str, count: int) -> list[str]:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    tickets = []
    for _ in range(count):
        call = uuid.uuid4().hex
        ticket = phone_ticket_id(call)
        record = PhoneCallLogged(
            event_id=event_id("phone", call),
            occurred_at=SystemClock().now(),
            source="test-phone-system",
            data=PhoneCallLoggedData(
                ticket_id=ticket, call_id=call, caller="+52 55 5555 0000", customer_id=None,
                subject="Consulta", summary="El cliente pregunta cómo cambiar el mensaje "
                "de bienvenida del menú.", agent="operadora", suggested_priority=None,
            ),
        )  # fmt: skip
        producer.send(
            named(TICKET_EVENTS, topic_prefix), key=ticket.encode(), value=to_json(record)
        )
        tickets.append(ticket)
    producer.flush(30)
    producer.close()
    return tickets


class WorkersProcess(ComponentProcess):
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        super().__init__("workers", env, log_path)
        self.port = int(env["ENGINE_WORKERS_METRICS_PORT"])

    def leading(self) -> bool:
        return self.metrics.metric("ticketing_workers_leading", port=self.port) == 1


def test_two_workers_assign_every_ticket_once_when_the_lease_holder_is_killed(
    topics: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = engine_env(
        tmp_path / "state", topics, topic_prefix, ENGINE_AGENTS_FILE=str(agents_file(tmp_path, 50))
    )
    processor = ProcessorProcess(env, tmp_path / "processor.log")
    workers = [
        WorkersProcess({**env, "ENGINE_WORKERS_METRICS_PORT": str(port)}, tmp_path / f"w{n}.log")
        for n, port in enumerate((int(env["ENGINE_WORKERS_METRICS_PORT"]), free_port()))
    ]
    states = TopicReader(topics, named(TICKET_STATE, topic_prefix))
    activity = TopicReader(topics, named(TICKET_ACTIVITY, topic_prefix))
    try:
        processor.wait_assigned()
        leader = wait_until(
            lambda: next((w for w in workers if w.leading()), None), 60, "a lease holder"
        )
        first = _phone_calls(topics, topic_prefix, 30)
        wait_until(
            lambda: len(activity.matching(lambda k, v: k in first)) >= 5, 60, "some assignments"
        )
        leader.kill()
        killed_at = time.monotonic()
        second = _phone_calls(topics, topic_prefix, 30)
        survivor = next(w for w in workers if w is not leader)
        wait_until(survivor.leading, 60, "the other worker to take the lease")
        print(f"lease taken over {time.monotonic() - killed_at:.1f}s after the SIGKILL")
        every = set(first + second)

        def unassigned() -> set[str]:
            assigned = states.keyed(
                lambda key, value: key in every and bool(value["data"]["ticket"]["assignee"])
            )
            return every - {key for key, _ in assigned}

        wait_until(lambda: not unassigned(), 90, "every ticket to be assigned")
        assignments = Counter(
            key
            for key, _ in activity.keyed(
                lambda key, value: key in every and value["data"]["activity"] == "assigned"
            )
        )
        assert set(assignments) == every
        assert max(assignments.values()) == 1, assignments.most_common(3)
    finally:
        for worker in workers:
            worker.stop()
        processor.stop()
        states.close()
        activity.close()
