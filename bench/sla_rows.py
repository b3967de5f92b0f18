"""What the SLA worker holds after N tickets opened and M of them resolved: rows kept for
every ticket (the rule before resolved rows were deleted) against rows deleted at
resolution (the worker's rule now), in one run.

Tickets pass through: once N - M are open, the oldest is resolved as each new one opens.

1. The worker's own decisions without Kafka (facts_of, next_update_due, row_change): rows
   and the bytes of the table as faust's memory store keeps it (the JSON of each row).
2. Against a broker (``--broker``): the real worker on N + M ``ticket.updated`` records,
   once with each rule (a fresh broker each); rows held, the process's resident memory,
   the keys left live on ``sla.clocks.v1`` (what compaction keeps) and the rows a worker
   starting afterwards recovers from it.

    python -m bench.sla_rows [--opened 100000] [--resolved 90000] [--broker]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from engine.contract import (
    Channel,
    CustomerProfile,
    Priority,
    SlaClockData,
    SlaClockUpdated,
    SlaFacts,
    SupportPlan,
    TicketState,
    TicketStatus,
    TicketUpdated,
    TicketUpdatedData,
    Tier,
    to_json,
)
from engine.contract.customers import CustomerDirectory
from engine.contract.topics import SLA_CLOCKS, TICKET_STATE, declared_topics
from engine.kafka import broker
from engine.kafka.admin import provision
from engine.kafka.security import kafka_python_options, security_for
from engine.settings import Settings
from engine.sla.calendars import DEFAULT_CALENDARS
from engine.sla.facts import facts_of
from engine.sla.obligations import SlaPolicy, next_update_due
from engine.sla.rows import RowChange, row_change
from tests.integration.harness import free_port

PARTITIONS = 6
OPENED_AT = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
PROFILE = CustomerProfile(customer_id="acme", plan=SupportPlan.ALWAYS, timezone="UTC")
Rule = Callable[[SlaFacts | None, SlaFacts, bool], RowChange]


def rows_kept(stored: SlaFacts | None, facts: SlaFacts, armed: bool) -> RowChange:
    """The rule before: every ticket keeps a row, a resolved one disarmed."""
    return RowChange.KEEP if stored == facts else RowChange.WRITE


RULES: dict[str, Rule] = {"kept": rows_kept, "deleted": row_change}


def ticket(n: int, resolved: bool) -> TicketState:
    """A P4 ticket (its update is due in a week: no alert disturbs the count), opened an
    hour ago; resolved half an hour later when ``resolved``."""
    at = OPENED_AT + timedelta(minutes=30) if resolved else OPENED_AT
    return TicketState(
        ticket_id=f"T-{n:013d}", channel=Channel.EMAIL, subject="s",
        requester="c@acme.example", customer_id="acme", customer=PROFILE, opened_at=OPENED_AT,
        updated_at=at, priority=Priority.P4, category="question", tier=Tier.L1,
        special_routes=(), tags=(), recent_event_ids=("e",), ruleset_version="bench",
        priority_since=OPENED_AT, status_since=at, event_count=2 if resolved else 1,
        status=TicketStatus.RESOLVED if resolved else TicketStatus.OPEN,
        resolved_at=at if resolved else None,
    )  # fmt: skip


def lifecycle(opened: int, resolved: int) -> list[TicketState]:
    """Tickets opened one after another; once ``opened - resolved`` are open, the oldest
    is resolved as each new one opens (a desk's steady state: the open set keeps its size
    while tickets pass through)."""
    window = opened - resolved
    states = []
    for n in range(opened):
        states.append(ticket(n, False))
        if n >= window:
            states.append(ticket(n - window, True))
    return states


def table_after(states: list[TicketState], rule: Rule) -> dict[bytes, bytes]:
    """The table the worker's decisions leave (rows as the worker writes them)."""
    directory, policy = CustomerDirectory([]), SlaPolicy()
    calendar = DEFAULT_CALENDARS.for_plan(SupportPlan.ALWAYS).in_zone("UTC")
    table: dict[bytes, bytes] = {}
    facts_held: dict[str, SlaFacts] = {}
    for state in states:
        stored = facts_held.get(state.ticket_id)
        facts = facts_of(state, directory, stored, policy.pause_while_waiting)
        obligation = next_update_due(facts, calendar, policy)
        change = rule(stored, facts, obligation is not None)
        key = state.ticket_id.encode()
        if change is RowChange.DELETE:
            del table[key], facts_held[state.ticket_id]
        elif change is RowChange.WRITE:
            due = obligation.deadline if obligation else None
            data = SlaClockData(
                ticket_id=state.ticket_id, partition=0, facts=facts, progress=None,
                next_alert_at=due,
            )  # fmt: skip
            record = SlaClockUpdated(event_id="e", occurred_at=OPENED_AT, source="b", data=data)
            table[key] = to_json(record)
            facts_held[state.ticket_id] = facts
    return table


def table_bytes(states: list[TicketState], rule: Rule) -> tuple[int, int]:
    """Rows and the bytes the table holds once built (keys, JSON rows and the dict),
    measured by tracemalloc after everything else the decisions allocated is freed."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    table = table_after(states, rule)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return len(table), held


# --- against a broker --------------------------------------------------------------------


def report(figures: dict[str, float]) -> None:
    os.write(1, (json.dumps(figures) + "\n").encode())  # faust owns sys.stdout
    os._exit(0)


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def run_worker(bootstrap: str, state_dir: str, app_id: str, rule: str, expect: int) -> None:
    """The real worker; ``expect``: state records to process before reporting (0: report
    the rows recovered from the changelog once the table is recovered)."""
    import faust

    import engine.sla.worker as module

    module.row_change = RULES[rule]  # type: ignore[attr-defined,assignment]
    settings = Settings(
        bootstrap_servers=bootstrap, state_dir=Path(state_dir), partitions=PARTITIONS,
        app_id=app_id,
    )  # fmt: skip
    worker = module.build_worker(settings)
    on_state = worker.on_state
    seen = {"states": 0}

    async def counted(partition: int, value: bytes) -> Any:
        pending = await on_state(partition, value)
        seen["states"] += 1
        if seen["states"] == expect:
            await worker.app.producer.flush()
            gc.collect()
            report({"rows": len(worker.clocks.data), "rss": resident_bytes()})
        return pending

    async def recovered() -> None:  # after the worker's own callback rebuilt its index
        if expect == 0:
            gc.collect()
            report({"rows": len(worker.clocks.data), "rss": resident_bytes()})

    worker.on_state = counted  # type: ignore[method-assign]
    worker.clocks.on_recover(recovered)
    app_worker = faust.Worker(worker.app, loglevel="ERROR", quiet=True)
    app_worker.spinner = None
    app_worker.execute_from_commandline()


def worker_figures(bootstrap: str, state_dir: str, app_id: str, rule: str, expect: int) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "bench.sla_rows", "worker", "--bootstrap", bootstrap,
         "--state-dir", state_dir, "--app-id", app_id, "--rule", rule,
         "--expect", str(expect)],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line.startswith('{"rows"')]
    if not lines:
        raise RuntimeError(f"no figure:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return json.loads(lines[0])


def changelog_keys(bootstrap: str) -> tuple[int, int]:
    """(records, keys whose last record is a row, not a tombstone) on sla.clocks.v1."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, **kafka_python_options(security_for(bootstrap))
    )
    partitions = [TopicPartition(SLA_CLOCKS, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends = consumer.end_offsets(partitions)
    latest: dict[bytes, bool] = {}
    records = 0
    while any(consumer.position(tp) < ends[tp] for tp in partitions):
        for batch in consumer.poll(timeout_ms=1000).values():
            for record in batch:
                records += 1
                latest[record.key] = record.value is not None
    consumer.close()
    return records, sum(latest.values())


def on_broker(states: list[TicketState], rule: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-sla-rows-") as tmp:
        settings = Settings(
            state_dir=Path(tmp), broker_port=free_port(), controller_port=free_port(),
            partitions=PARTITIONS,
        )  # fmt: skip
        broker.start(settings)
        try:
            bootstrap = settings.kafka_bootstrap
            provision(bootstrap, declared_topics(PARTITIONS, 1))
            producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                acks="all",
                linger_ms=20,
                **kafka_python_options(security_for(bootstrap)),
            )
            for n, state in enumerate(states):
                record = TicketUpdated(
                    event_id=f"ticket.updated:{n}", occurred_at=state.updated_at,
                    source="bench", data=TicketUpdatedData(ticket=state),
                )  # fmt: skip
                producer.send(TICKET_STATE, key=state.ticket_id.encode(), value=to_json(record))
            producer.flush()
            producer.close()
            app_id = f"bench-sla-rows-{rule}-{os.getpid()}"
            ran = worker_figures(bootstrap, tmp, app_id, rule, len(states))
            records, live = changelog_keys(bootstrap)
            recovered = worker_figures(bootstrap, tmp, app_id, rule, 0)
        finally:
            broker.stop(settings)
    return {
        "rows": ran["rows"], "rss": ran["rss"], "records": records, "live": live,
        "recovered": recovered["rows"], "recovered_rss": recovered["rss"],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="?", default="compare")
    parser.add_argument("--opened", type=int, default=100_000)
    parser.add_argument("--resolved", type=int, default=90_000)
    parser.add_argument("--broker", action="store_true")
    parser.add_argument("--bootstrap", default="")
    parser.add_argument("--state-dir", default="")
    parser.add_argument("--app-id", default="")
    parser.add_argument("--rule", choices=sorted(RULES), default="deleted")
    parser.add_argument("--expect", type=int, default=0)
    args = parser.parse_args()
    if args.role == "worker":
        run_worker(args.bootstrap, args.state_dir, args.app_id, args.rule, args.expect)
        return
    states = lifecycle(args.opened, args.resolved)
    print(f"{args.opened:,} tickets opened, {args.resolved:,} of them resolved")
    for rule in RULES:
        rows, held = table_bytes(states, RULES[rule])
        print(f"worker's decisions, rows {rule:>7}: {rows:>9,} rows, "
              f"{held / 1e6:7.1f} MB of table ({held / max(rows, 1):.0f} B per row)")  # fmt: skip
    if not args.broker:
        return
    for rule in RULES:
        started = time.perf_counter()
        got = on_broker(states, rule)
        print(f"real worker, rows {rule:>7}: {got['rows']:>9,} rows held, "
              f"RSS {got['rss'] / 1e6:.0f} MB; {SLA_CLOCKS}: {got['records']:,} records, "
              f"{got['live']:,} live keys; a worker starting after it recovers "
              f"{got['recovered']:,} rows (RSS {got['recovered_rss'] / 1e6:.0f} MB) "
              f"[{time.perf_counter() - started:.0f}s]")  # fmt: skip


if __name__ == "__main__":
    main()
