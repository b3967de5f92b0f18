"""The SLA worker against a real broker: how fast it arms a backlog of ticket states, and
what an expiring deadline costs when the alert and the table row go through Kafka.

Starts a local broker, writes N ``ticket.updated`` records (P1 on 24x7, opened a day ago,
so every obligation is overdue) to ``tickets.state.v1``, then runs ``engine sla``'s worker
in a subprocess with its timer held back until the backlog is armed, and times:

  (a) arming: first state record to the N-th table row acknowledged;
  (b) alerting: the first tick after that to the N-th alert acknowledged (one tick emits
      them all: alert records sent and acknowledged together, then the table rows).

    python -m bench.sla_worker [--tickets 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from engine.contract import (
    Channel,
    CustomerProfile,
    Priority,
    SupportPlan,
    TicketState,
    TicketStatus,
    TicketUpdated,
    TicketUpdatedData,
    Tier,
    to_json,
)
from engine.contract.topics import TICKET_STATE, declared_topics
from engine.kafka import broker
from engine.kafka.admin import provision
from engine.kafka.security import kafka_python_options, security_for
from engine.settings import Settings
from tests.integration.harness import free_port


def states(count: int) -> list[tuple[bytes, bytes]]:
    opened = datetime.now(UTC) - timedelta(days=1)
    customer = CustomerProfile(customer_id="acme", plan=SupportPlan.ALWAYS, timezone="UTC")
    records = []
    for n in range(count):
        ticket = TicketState(
            ticket_id=f"T-{n:013d}", status=TicketStatus.OPEN, channel=Channel.EMAIL,
            subject="s", requester="c@acme.example", customer_id="acme", customer=customer,
            opened_at=opened, updated_at=opened, priority=Priority.P1, category="pbx_down",
            tier=Tier.L3, special_routes=(), tags=(), event_count=1, recent_event_ids=("e",),
            ruleset_version="bench", priority_since=opened, status_since=opened,
        )  # fmt: skip
        record = TicketUpdated(
            event_id=f"ticket.updated:{n}", occurred_at=opened, source="bench",
            data=TicketUpdatedData(ticket=ticket),
        )  # fmt: skip
        records.append((ticket.ticket_id.encode(), to_json(record)))
    return records


def report(figures: dict[str, float]) -> None:
    os.write(1, (json.dumps(figures) + "\n").encode())  # faust owns sys.stdout
    os._exit(0)


def run_worker(bootstrap: str, count: int, partitions: int, state_dir: str) -> None:
    import faust

    from engine.sla.worker import build_worker

    settings = Settings(
        bootstrap_servers=bootstrap, state_dir=Path(state_dir), partitions=partitions,
        app_id=f"bench-sla-{os.getpid()}", sla_tick_seconds=0.2,
    )  # fmt: skip
    worker = build_worker(settings)
    marks: dict[str, Any] = {"states": 0, "alerts": 0, "open": False}
    on_state, send_alert, pop_due = worker.on_state, worker._send_alert, worker.index.pop_due

    async def counted_state(partition: int, value: bytes) -> Any:
        if marks["states"] == 0:
            marks["armed_from"] = time.perf_counter()
        pending = await on_state(partition, value)
        marks["states"] += 1
        if marks["states"] == count:
            await pending
            await worker.app.producer.flush()
            marks["armed"] = time.perf_counter() - marks["armed_from"]
            marks["open"] = True
        return pending

    def held_pop_due(now: datetime) -> list[tuple[int, str]]:
        if not marks["open"]:
            return []
        if marks["alerts"] == 0 and "alerts_from" not in marks:
            marks["alerts_from"] = time.perf_counter()
        return pop_due(now)

    async def counted_alert(plan: Any) -> Any:
        future = await send_alert(plan)
        marks["alerts"] += 1
        if marks["alerts"] == count:
            await future
            await worker.app.producer.flush()
            elapsed = time.perf_counter() - marks["alerts_from"]
            report({"armed": marks["armed"], "alerted": elapsed})
        return future

    worker.on_state = counted_state  # type: ignore[method-assign]
    worker._send_alert = counted_alert  # type: ignore[method-assign]
    worker.index.pop_due = held_pop_due  # type: ignore[method-assign]
    app_worker = faust.Worker(worker.app, loglevel="ERROR", quiet=True)
    app_worker.spinner = None
    app_worker.execute_from_commandline()


def compare(count: int, partitions: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sla-") as tmp:
        settings = Settings(
            state_dir=Path(tmp), broker_port=free_port(), controller_port=free_port(),
            partitions=partitions,
        )  # fmt: skip
        broker.start(settings)
        try:
            bootstrap = settings.kafka_bootstrap
            provision(bootstrap, declared_topics(partitions, 1))
            producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                acks="all",
                linger_ms=20,
                **kafka_python_options(security_for(bootstrap)),
            )
            for key, value in states(count):
                producer.send(TICKET_STATE, key=key, value=value)
            producer.flush()
            producer.close()
            result = subprocess.run(
                [sys.executable, "-m", "bench.sla_worker", "worker", "--tickets", str(count),
                 "--partitions", str(partitions), "--bootstrap", bootstrap, "--state-dir", tmp],
                capture_output=True, text=True, timeout=1800, check=False,
            )  # fmt: skip
        finally:
            broker.stop(settings)
    lines = [line for line in result.stdout.splitlines() if line.startswith('{"armed"')]
    if not lines:
        raise RuntimeError(f"no figure:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    figures = json.loads(lines[0])
    print(f"tickets: {count:,}, partitions: {partitions}, one local broker, 2 cores")
    print(f"(a) arming the backlog: {count / figures['armed']:,.0f} states/s "
          f"({figures['armed']:.2f}s)")  # fmt: skip
    print(f"(b) alerting: {count / figures['alerted']:,.0f} alerts/s, "
          f"{figures['alerted'] / count * 1e6:.0f} µs per expiring deadline "
          f"({figures['alerted']:.2f}s, alert and table row acknowledged)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", nargs="?", default="compare")
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--bootstrap", default="")
    parser.add_argument("--state-dir", default="")
    args = parser.parse_args()
    if args.role == "worker":
        run_worker(args.bootstrap, args.tickets, args.partitions, args.state_dir)
    else:
        compare(args.tickets, args.partitions)


if __name__ == "__main__":
    main()
