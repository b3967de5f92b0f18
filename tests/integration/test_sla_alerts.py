"""SLA alerts from the running engine, on a compressed timeline (half an hour a second):
warnings and breaches of UPD-P1, repeated while unfulfilled; a resolved ticket's alerts
stop; killing the SLA worker repeats no alert."""

from __future__ import annotations

import os
import signal
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from engine.models import (
    Channel,
    Priority,
    TicketState,
    TicketStatus,
    TicketUpdated,
    TicketUpdatedData,
    Tier,
    to_json,
)
from engine.topics import SLA_ALERTS, TICKET_STATE
from tests.integration.harness import EngineProcess, TopicReader, engine_env, free_port, wait_until

# One real second is half an hour of SLA time: UPD-P1 (every 2 h) falls due every 4 s,
# its warning (30 min before) a second earlier.
SCALE = 1800


def ticket_state(
    ticket_id: str, customer_id: str, opened_at: datetime, **changes: Any
) -> TicketState:
    ticket = TicketState(
        ticket_id=ticket_id,
        status=TicketStatus.OPEN,
        channel=Channel.EMAIL,
        subject="La central está caída",
        requester="gerente@acme.example",
        customer_id=customer_id,
        opened_at=opened_at,
        updated_at=opened_at,
        priority=Priority.P1,
        category="pbx_down",
        tier=Tier.L3,
        special_routes=(),
        tags=(),
        event_count=1,
        recent_event_ids=(f"e-{ticket_id}",),
        ruleset_version="test",
    )
    return ticket.model_copy(update=changes)


def publish(producer: KafkaProducer, ticket: TicketState, cause: str) -> None:
    record = TicketUpdated(
        event_id=f"ticket.updated:{cause}",
        occurred_at=datetime.now(UTC),
        source="test",
        data=TicketUpdatedData(ticket=ticket),
    )
    producer.send(TICKET_STATE, key=ticket.ticket_id.encode(), value=to_json(record)).get(30)


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


def alerts_of(reader: TopicReader, ticket_id: str) -> list[dict[str, Any]]:
    return [
        value["data"] | {"kind": value["kind"]}
        for value in reader.matching(lambda key, value: key == ticket_id)
    ]


def test_warnings_breaches_fulfilment_and_a_killed_worker(topics: str, tmp_path: Path) -> None:
    customers = tmp_path / "customers.yaml"
    customers.write_text(
        "customers:\n  - {id: acme, domains: [acme.example], plan: 24x7, timezone: Europe/Madrid}\n"
    )
    sla_port = free_port()
    env = engine_env(
        tmp_path / "state", topics,
        ENGINE_CUSTOMERS_FILE=str(customers),
        ENGINE_SLA_TIME_SCALE=str(SCALE),
        ENGINE_SLA_TIME_ORIGIN=datetime.now(UTC).isoformat(),
        ENGINE_SLA_TICK_SECONDS="0.2",
        ENGINE_SLA_METRICS_PORT=str(sla_port),
    )  # fmt: skip
    engine = EngineProcess(env, tmp_path / "engine.log")
    engine.start("--bootstrap-servers", topics)
    producer = KafkaProducer(bootstrap_servers=topics, acks="all")
    alerts = TopicReader(topics, SLA_ALERTS)
    try:
        opened = datetime.now(UTC)
        kept, fulfilled = (f"T-SLA{uuid.uuid4().hex[:10].upper()}" for _ in range(2))
        for ticket_id in (kept, fulfilled):
            publish(producer, ticket_state(ticket_id, "acme", opened), f"{ticket_id}:opened")

        def breached(ticket_id: str, repeat: int) -> bool:
            return any(
                alert["kind"] == "sla.breached" and alert["repeat"] >= repeat
                for alert in alerts_of(alerts, ticket_id)
            )

        wait_until(lambda: breached(kept, 1) and breached(fulfilled, 1), 90, "first breaches",
                   on_timeout=engine.log)  # fmt: skip
        for ticket_id in (kept, fulfilled):
            first = alerts_of(alerts, ticket_id)[:2]
            assert [alert["kind"] for alert in first] == ["sla.warning", "sla.breached"]
            assert first[0]["dedup_key"] == f"{ticket_id}:UPD-P1:1"
            assert first[1]["calendar"] == "24x7 (Europe/Madrid)"
            assert "every 2 open hours" in first[1]["explanation"]

        resolved = ticket_state(fulfilled, "acme", opened, status=TicketStatus.RESOLVED)
        publish(producer, resolved, f"{fulfilled}:resolved")
        settled = len(alerts_of(alerts, fulfilled))
        wait_until(lambda: breached(kept, 3), 60, "the unfulfilled obligation to breach again")

        (worker,) = sla_worker_pids(engine)
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: sla_worker_pids(engine) not in ([], [worker]), 30, "a new SLA worker")
        highest = max(alert["repeat"] for alert in alerts_of(alerts, kept))
        wait_until(lambda: breached(kept, highest + 2), 120, "breaches after the restart",
                   on_timeout=engine.log)  # fmt: skip

        identities = Counter(
            (alert["kind"], alert["dedup_key"], alert["repeat"])
            for alert in alerts_of(alerts, kept)
        )
        assert [identity for identity, seen in identities.items() if seen > 1] == []
        # At most one alert was already on its way when the resolution arrived.
        assert len(alerts_of(alerts, fulfilled)) <= settled + 1
    finally:
        producer.close()
        alerts.close()
        assert engine.stop() == 0, engine.log()
