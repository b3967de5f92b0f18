"""What the SLA timer costs: a tick with nothing due, per expiring deadline, and memory.

Three figures, measured in one run on the SLA worker's own code (no Kafka):

1. tick cost with 1,000,000 open tickets and nothing due, against 1,000 open tickets
   (the due index looks at the top of each partition's heap, so the ratio should be ~1);
2. cost per expiring deadline: popping it, deciding the obligation and the alert
   (next_update_due, step) and building the alert record, as the timer does;
3. memory per open ticket: the index entry plus the table row (the JSON the worker keeps),
   and the time to rebuild the index from the rows after a rebalance.

    python -m bench.sla_ticks [--open 1000000] [--small 1000] [--expiring 20000]
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from engine.contract import (
    Priority,
    SlaClockData,
    SlaClockUpdated,
    SlaFacts,
    SupportPlan,
    TicketStatus,
    to_json,
)
from engine.sla.alerts import alert_record, next_alert, progress_of, step
from engine.sla.calendars import DEFAULT_CALENDARS
from engine.sla.index import DueIndex
from engine.sla.obligations import SlaPolicy, next_update_due
from engine.sla.worker import index_entry

PARTITIONS = 6
NOW = datetime(2026, 11, 23, 16, tzinfo=UTC)
POLICY = SlaPolicy()


def facts(n: int, opened_at: datetime) -> SlaFacts:
    plan = SupportPlan.BUSINESS_HOURS if n % 2 else SupportPlan.ALWAYS
    return SlaFacts(
        ticket_id=f"T-{n:013d}", priority=list(Priority)[n % 4], status=TicketStatus.OPEN,
        opened_at=opened_at, plan=plan, timezone="America/Mexico_City",
    )  # fmt: skip


def filled_index(count: int, seed: int = 7) -> DueIndex:
    """``count`` tickets spread over the partitions, due within the coming week."""
    rng = random.Random(seed)
    entries: list[list[tuple[str, datetime]]] = [[] for _ in range(PARTITIONS)]
    for n in range(count):
        due = NOW + timedelta(seconds=rng.randint(60, 7 * 86_400))
        entries[n % PARTITIONS].append((f"T-{n:013d}", due))
    index = DueIndex()
    for partition, found in enumerate(entries):
        index.assign(partition, found)
    return index


def per_call(action: Callable[[], object], calls: int, rounds: int = 5) -> float:
    """Best of ``rounds`` mean seconds per call."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            action()
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def tick_costs(small: int, large: int, ticks: int, rounds: int = 7) -> tuple[float, float]:
    """Best seconds per tick with nothing due, rounds of both sizes taken in turn so that
    the machine's other load falls on both alike."""
    indexes = [filled_index(small), filled_index(large)]
    assert all(index.pop_due(NOW) == [] for index in indexes)
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for n, index in enumerate(indexes):
            tick = partial(index.pop_due, NOW)
            best[n] = min(best[n], per_call(tick, ticks, rounds=1))
    return best[0], best[1]


def expiring_cost(count: int) -> float:
    """Seconds per due deadline: what the timer does for each (without Kafka's round trip)."""
    clocks: dict[str, SlaClockData] = {}
    index = DueIndex()
    index.assign(0, [])
    for n in range(count):
        opened = NOW + timedelta(seconds=n)
        ticket = facts(n, opened)
        calendar = DEFAULT_CALENDARS.for_plan(ticket.plan).in_zone(ticket.timezone)
        obligation = next_update_due(ticket, calendar, POLICY)
        assert obligation is not None
        upcoming = next_alert(obligation, progress_of(obligation, None), calendar, POLICY)
        clocks[ticket.ticket_id] = SlaClockData(
            ticket_id=ticket.ticket_id, partition=0, facts=ticket, progress=None,
            next_alert_at=upcoming.due_at,
        )  # fmt: skip
        index.schedule(0, ticket.ticket_id, upcoming.due_at)
    latest = max(clock.next_alert_at or NOW for clock in clocks.values())
    started = time.perf_counter()
    emitted = 0
    due_now = index.pop_due(latest)
    for _, ticket_id in due_now:
        stored = clocks[ticket_id]
        now = stored.next_alert_at or NOW  # each handled at its own due time: one alert
        calendar = DEFAULT_CALENDARS.for_plan(stored.facts.plan).in_zone(stored.facts.timezone)
        obligation = next_update_due(stored.facts, calendar, POLICY)
        assert obligation is not None
        due = step(obligation, stored.progress, calendar, POLICY, now)
        if due.emit is not None:
            to_json(alert_record(obligation, due.emit, now, "bench"))
            emitted += 1
        updated = stored.model_copy(
            update={"progress": due.progress, "next_alert_at": due.next_due.due_at}
        )
        to_json(SlaClockUpdated(event_id="e", occurred_at=NOW, source="bench", data=updated))
        index.schedule(0, ticket_id, due.next_due.due_at)
    elapsed = time.perf_counter() - started
    assert emitted == len(due_now) > 0, (emitted, len(due_now))
    return elapsed / len(due_now)


def rebuild_cost(rows: dict[bytes, bytes]) -> float:
    """Seconds per table row to rebuild the due index after a rebalance."""
    started = time.perf_counter()
    entries: list[list[tuple[str, datetime]]] = [[] for _ in range(PARTITIONS)]
    for raw in rows.values():
        partition, ticket_id, due_at = index_entry(raw)
        if due_at is not None:
            entries[partition].append((ticket_id, due_at))
    index = DueIndex()
    for partition, found in enumerate(entries):
        index.assign(partition, found)
    return (time.perf_counter() - started) / len(rows)


def memory_per_ticket(count: int) -> tuple[float, float, float]:
    """Bytes per open ticket (index entry, index entry + table row), and the seconds per
    row of rebuilding the index from those rows."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = filled_index(count)
    with_index = tracemalloc.get_traced_memory()[0]
    opened = NOW - timedelta(hours=1)
    rows = {}
    for n in range(count):
        data = SlaClockData(
            ticket_id=f"T-{n:013d}", partition=n % PARTITIONS, facts=facts(n, opened),
            progress=None, next_alert_at=NOW + timedelta(hours=1),
        )  # fmt: skip
        record = SlaClockUpdated(event_id=f"e{n}", occurred_at=NOW, source="bench", data=data)
        rows[data.ticket_id.encode()] = to_json(record)
    with_rows = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(index) == len(rows) == count
    return (with_index - before) / count, (with_rows - before) / count, rebuild_cost(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--ticks", type=int, default=100_000)
    parser.add_argument("--expiring", type=int, default=20_000)
    parser.add_argument("--memory-tickets", type=int, default=100_000)
    args = parser.parse_args()

    small, large = tick_costs(args.small, args.open, args.ticks)
    print(f"tick, nothing due: {args.small:,} open {small * 1e6:.2f} µs, "
          f"{args.open:,} open {large * 1e6:.2f} µs, ratio {large / small:.2f}")  # fmt: skip
    each = expiring_cost(args.expiring)
    print(f"per expiring deadline ({args.expiring:,} due at once): {each * 1e6:.0f} µs "
          f"of CPU (obligation, alert step, alert and table records; Kafka excluded)")  # fmt: skip
    index_only, total, rebuild = memory_per_ticket(args.memory_tickets)
    print(f"memory per open ticket ({args.memory_tickets:,}): index {index_only:.0f} B, "
          f"index + table row {total:.0f} B")  # fmt: skip
    print(f"index rebuild after a rebalance: {rebuild * 1e6:.1f} µs per table row")


if __name__ == "__main__":
    main()
