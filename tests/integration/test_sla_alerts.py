"""SLA alerts from the running engine, on a compressed timeline (a quarter of an hour a
second): UPD-P1 warnings and breaches, repeated while unfulfilled; informing the customer
fulfils the obligation and arms the next; resolving stops the alerts; a second SLA worker
joining, and each worker killed in turn, move partitions without repeating an alert; a
resolved ticket's row is deleted from the table and its changelog, stays deleted through a
restart, and a reopening re-arms under a new key; a ticket waiting on a third party shows
what it waits on and still breaches when the customer is not informed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from engine.contract import (
    ActivityType,
    ThirdPartyWait,
    ThirdPartyWaitKind,
    TicketActivity,
    TicketActivityData,
    to_json,
)
from engine.contract.topics import SLA_ALERTS, SLA_CLOCKS, TICKET_EVENTS, TICKET_STATE, named
from tests.integration.harness import (
    EngineProcess,
    TopicReader,
    engine_env,
    free_port,
    send_mail,
    support_mail,
    wait_until,
)

# One real second is 15 minutes of SLA time: UPD-P1 (every 2 h) falls due every 8 s, its
# warning (30 min before) 2 s earlier.
SCALE = 900
OUTAGE = "La central está caída, no entran ni salen llamadas."


def activity(
    producer: KafkaProducer, topic_prefix: str, ticket: str, kind: ActivityType, **fields: Any
) -> None:
    record = TicketActivity(
        event_id=f"activity:{uuid.uuid4()}",
        occurred_at=datetime.now(UTC),
        source="test-agent-tool",
        data=TicketActivityData(ticket_id=ticket, activity=kind, actor="ana", **fields),
    )
    producer.send(
        named(TICKET_EVENTS, topic_prefix), key=ticket.encode(), value=to_json(record)
    ).get(30)


def sla_worker_pids(engine: EngineProcess) -> list[int]:
    """The ``engine sla`` children of this test's ``engine up``."""
    assert engine.process is not None
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == engine.process.pid and cmdline[-2:] == [b"sla", b""]:
            found.append(int(entry))
    return found


def metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:  # not serving yet
        return 0.0
    found = [line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(found[0]) if found else 0.0


def fast_sla_env(
    topics: str, topic_prefix: str, tmp_path: Path, metrics_port: int
) -> dict[str, str]:
    """``engine up`` for a 24x7 customer in Madrid, with SLA time running SCALE times fast."""
    customers = tmp_path / "customers.yaml"
    customers.write_text(
        "customers:\n  - {id: acme, domains: [acme.example], plan: 24x7, timezone: Europe/Madrid}\n"
    )
    return engine_env(tmp_path / "state", topics, topic_prefix,
        ENGINE_CUSTOMERS_FILE=str(customers),
        ENGINE_SLA_TIME_SCALE=str(SCALE),
        ENGINE_SLA_TIME_ORIGIN=datetime.now(UTC).isoformat(),
        ENGINE_SLA_TICK_SECONDS="0.2",
        ENGINE_SLA_METRICS_PORT=str(metrics_port),
    )  # fmt: skip


def open_ticket(engine: EngineProcess) -> str:
    mail = support_mail("Urgente", OUTAGE, f"<{uuid.uuid4()}@acme.example>")
    code, reply = send_mail(engine.smtp_port, mail)
    assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[-1]


def test_warnings_breaches_fulfilment_and_workers_killed(
    topics: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = fast_sla_env(topics, topic_prefix, tmp_path, free_port())
    engine = EngineProcess(env, tmp_path / "engine.log")
    engine.start("--bootstrap-servers", topics)
    producer = KafkaProducer(bootstrap_servers=topics, acks="all")
    reader = TopicReader(topics, named(SLA_ALERTS, topic_prefix))

    def alerts(ticket: str) -> list[dict[str, Any]]:
        found = reader.matching(lambda key, value: key == ticket)
        return [value["data"] | {"kind": value["kind"]} for value in found]

    def seen(ticket: str, kind: str, instance: int, repeat: int = 0) -> bool:
        return any(
            alert["kind"] == kind and alert["instance"] == instance and alert["repeat"] >= repeat
            for alert in alerts(ticket)
        )

    try:
        kept, informed = open_ticket(engine), open_ticket(engine)
        wait_until(
            lambda: seen(kept, "sla.breached", 1, 1) and seen(informed, "sla.breached", 1, 1),
            120, "the first breaches", on_timeout=engine.log,
        )  # fmt: skip
        warning, breach = alerts(kept)[:2]
        assert (warning["kind"], warning["repeat"]) == ("sla.warning", 0)
        assert (breach["kind"], breach["repeat"]) == ("sla.breached", 1)
        assert breach["dedup_key"] == f"{kept}:UPD-P1:1"
        assert breach["calendar"] == "24x7 (Europe/Madrid)"
        assert "every 2 open hours" in breach["explanation"]

        # Informing the customer fulfils UPD-P1 #1 and arms #2.
        activity(
            producer,
            topic_prefix,
            informed,
            ActivityType.CUSTOMER_INFORMED,
            message="Seguimos en ello",
        )
        wait_until(lambda: seen(informed, "sla.warning", 2), 60, "the warning of UPD-P1 #2")
        first_done = len([alert for alert in alerts(informed) if alert["instance"] == 1])
        # Resolving disarms it.
        activity(producer, topic_prefix, informed, ActivityType.RESOLVED, note="fuente reemplazada")
        wait_until(lambda: seen(kept, "sla.breached", 1, 3), 60, "more breaches of the other")
        settled = len(alerts(informed))

        def breaches_go_on(what: str) -> None:
            highest = max(alert["repeat"] for alert in alerts(kept))
            wait_until(lambda: seen(kept, "sla.breached", 1, highest + 2), 120, what,
                       on_timeout=engine.log)  # fmt: skip

        # A second worker joins the group and takes some partitions; then each worker is
        # killed in turn, so the ticket's partition moves at least once.
        second_port = free_port()
        second = subprocess.Popen(
            [sys.executable, "-m", "engine", "sla"],
            env={**env, "ENGINE_SLA_METRICS_PORT": str(second_port)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_until(lambda: metric(second_port, "ticketing_sla_assigned_partitions") > 0,
                       120, "the second SLA worker to own partitions")  # fmt: skip
            breaches_go_on("breaches after the second worker joined")
            (worker,) = sla_worker_pids(engine)
            os.kill(worker, signal.SIGKILL)
            wait_until(lambda: sla_worker_pids(engine) not in ([], [worker]), 30,
                       "engine up to restart its SLA worker")  # fmt: skip
            breaches_go_on("breaches after the first worker was killed")
        finally:
            second.kill()
            second.wait()
        breaches_go_on("breaches after the second worker was killed")

        identities = Counter(
            (alert["kind"], alert["dedup_key"], alert["repeat"]) for alert in alerts(kept)
        )
        assert [identity for identity, count in identities.items() if count > 1] == []
        after = alerts(informed)
        assert len([alert for alert in after if alert["instance"] == 1]) == first_done
        # At most the alert that was on its way when the resolution arrived.
        assert len(after) <= settled + 1
    finally:
        producer.close()
        reader.close()
        assert engine.stop() == 0, engine.log()


class Changelog:
    """``sla.clocks.v1`` as written, tombstones (None) included, read from the start."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        partitions = self.consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, partition) for partition in partitions]
        self.consumer.assign(assigned)
        self.consumer.seek_to_beginning(*assigned)
        self.records: list[tuple[str, dict[str, Any] | None]] = []

    def of(self, ticket: str) -> list[dict[str, Any] | None]:
        for batch in self.consumer.poll(timeout_ms=500).values():
            for record in batch:
                value = None if record.value is None else json.loads(record.value)
                self.records.append((record.key.decode(), value))
        return [value for key, value in self.records if key == ticket]


def test_a_resolved_ticket_s_row_is_deleted_for_good_and_a_reopening_re_arms(
    topics: str, topic_prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    env = fast_sla_env(topics, topic_prefix, tmp_path, port)
    engine = EngineProcess(env, tmp_path / "engine.log")
    engine.start("--bootstrap-servers", topics)
    producer = KafkaProducer(bootstrap_servers=topics, acks="all")
    reader = TopicReader(topics, named(SLA_ALERTS, topic_prefix))
    changelog = Changelog(topics, named(SLA_CLOCKS, topic_prefix))

    def alerts(ticket: str) -> list[dict[str, Any]]:
        return [value["data"] for value in reader.matching(lambda key, _: key == ticket)]

    try:
        ticket = open_ticket(engine)
        wait_until(lambda: any(alert["repeat"] == 1 for alert in alerts(ticket)), 120,
                   "the first breach", on_timeout=engine.log)  # fmt: skip
        wait_until(lambda: changelog.of(ticket), 30, "the ticket's row")
        armed = changelog.of(ticket)[-1]
        assert armed is not None and armed["data"]["next_alert_at"] is not None

        activity(producer, topic_prefix, ticket, ActivityType.RESOLVED, note="fuente reemplazada")
        wait_until(lambda: changelog.of(ticket)[-1] is None, 60, "the row's tombstone",
                   on_timeout=engine.log)  # fmt: skip
        wait_until(lambda: metric(port, "ticketing_sla_rows_deleted_total") >= 1, 30,
                   "the deletion counted")  # fmt: skip
        rows = metric(port, "ticketing_sla_table_rows")
        sent = alerts(ticket)
        assert {alert["dedup_key"] for alert in sent} == {f"{ticket}:UPD-P1:1"}

        # The restarted worker recovers the table from the changelog: the tombstone
        # removes the row, so it holds what the first held and writes nothing for it.
        (worker,) = sla_worker_pids(engine)
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: sla_worker_pids(engine) not in ([], [worker]), 30,
                   "engine up to restart its SLA worker")  # fmt: skip
        wait_until(lambda: metric(port, "ticketing_sla_assigned_partitions") > 0, 120,
                   "the restarted worker to recover its table", on_timeout=engine.log)  # fmt: skip
        assert metric(port, "ticketing_sla_table_rows") == rows
        assert changelog.of(ticket)[-1] is None
        assert len(alerts(ticket)) <= len(sent) + 1  # at most the one on its way

        # Reopened (its third event: opened, resolved, reopened): a fresh row, UPD-P1 #3
        # armed at the reopening, alerting from its warning; #1 is never alerted again.
        activity(producer, topic_prefix, ticket, ActivityType.REOPENED)
        wait_until(lambda: any(alert["repeat"] == 1 and alert["instance"] == 3
                               for alert in alerts(ticket)), 120,
                   "the reopened ticket's breach", on_timeout=engine.log)  # fmt: skip
        reopened = [alert for alert in alerts(ticket) if alert["instance"] == 3]
        assert [alert["repeat"] for alert in reopened][:2] == [0, 1]
        assert reopened[0]["dedup_key"] == f"{ticket}:UPD-P1:3"
        assert "ticket open again" in reopened[0]["explanation"]
        fresh = changelog.of(ticket)[-1]
        assert fresh is not None and fresh["data"]["facts"]["status"] == "open"
        assert metric(port, "ticketing_sla_table_rows") == rows + 1
        old = [alert for alert in alerts(ticket) if alert["instance"] == 1]
        assert len(old) <= len(sent) + 1
    finally:
        changelog.consumer.close()
        producer.close()
        reader.close()
        assert engine.stop() == 0, engine.log()


def test_a_ticket_waiting_on_a_third_party_still_breaches_when_nobody_informs_the_customer(
    topics: str, topic_prefix: str, tmp_path: Path
) -> None:
    engine = EngineProcess(fast_sla_env(topics, topic_prefix, tmp_path, free_port()),
                           tmp_path / "engine.log")  # fmt: skip
    engine.start("--bootstrap-servers", topics)
    producer = KafkaProducer(bootstrap_servers=topics, acks="all")
    alerts_topic = TopicReader(topics, named(SLA_ALERTS, topic_prefix))
    states = TopicReader(topics, named(TICKET_STATE, topic_prefix))
    changelog = Changelog(topics, named(SLA_CLOCKS, topic_prefix))
    rma = ThirdPartyWait(kind=ThirdPartyWaitKind.RMA, reference="RMA-2026-0042")

    def alerts(ticket: str) -> list[dict[str, Any]]:
        return [value["data"] for value in alerts_topic.matching(lambda key, _: key == ticket)]

    def clock_status(ticket: str) -> str | None:
        rows = changelog.of(ticket)
        latest = rows[-1] if rows else None
        return latest["data"]["facts"]["status"] if latest is not None else None

    try:
        ticket = open_ticket(engine)
        states.wait_for(lambda key, _: key == ticket)  # the mail made it a ticket
        activity(producer, topic_prefix, ticket, ActivityType.WAITING_ON_THIRD_PARTY,
                 waiting_on=rma, note="la fuente se cambia por garantía")  # fmt: skip

        def waiting(key: str | None, value: dict[str, Any]) -> bool:
            return key == ticket and value["data"]["ticket"]["status"] == "waiting_on_third_party"

        state = states.wait_for(waiting)["data"]["ticket"]
        assert state["waiting_on"] == {"kind": "rma", "reference": "RMA-2026-0042"}
        wait_until(lambda: clock_status(ticket) == "waiting_on_third_party", 60,
                   "the SLA worker to see the wait", on_timeout=engine.log)  # fmt: skip
        armed = changelog.of(ticket)[-1]
        assert armed is not None and armed["data"]["next_alert_at"] is not None

        # Seen by the SLA worker while waiting (pause_while_waiting is on): the breaches
        # of UPD-P1 #1 come all the same, and go on while nobody informs the customer.
        seen = max((alert["repeat"] for alert in alerts(ticket)), default=0)
        wait_until(lambda: any(alert["repeat"] >= max(seen, 1) + 1 for alert in alerts(ticket)),
                   120, "breaches during the wait", on_timeout=engine.log)  # fmt: skip
        assert {alert["dedup_key"] for alert in alerts(ticket)} == {f"{ticket}:UPD-P1:1"}
        assert clock_status(ticket) == "waiting_on_third_party"
    finally:
        changelog.consumer.close()
        producer.close()
        alerts_topic.close()
        states.close()
        assert engine.stop() == 0, engine.log()
