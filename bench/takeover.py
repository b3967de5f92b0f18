"""A new triage processor joining the group takes over its share of a large table.

A local cluster of ``--nodes`` KRaft nodes (three by default) is started for the run;
``tickets.state.v1`` (replication factor 3 on three nodes) is filled with ``--tickets``
state records (as ``bench.restart`` makes them). Processor A starts on it with an empty
state directory and its start is timed, as ``bench.restart`` times a first start. Then new
tickets are sent at ``--rate`` a second, each its own ``email.received`` event, and after
``--steady`` seconds of them processor B, with an empty state directory of its own,
joins A's group: the rebalance gives it half the partitions, whose table it must read
before it routes them.

It prints: when B owned partitions (its /metrics); how many state records B read and
how many of them in bulk; the time from B's start until the last ticket held up by the
takeover (routed more than ``--held-up`` seconds after it was sent) was routed, which is
the figure issue 17's target of 60 s is about; the slowest ticket; tickets never routed;
and B's memory. Both processors run as ``engine up`` runs them (started again on exit).

    python -m bench.takeover [--tickets 1000000] [--nodes 3] [--rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from bench.restart import (
    MIB,
    ProcessorRun,
    fill,
    mail_event,
    memory_of,
    processor_env,
    reader_at_end,
    stored_records,
    template_state,
)
from engine.contract import to_json
from engine.contract.topics import TICKET_EVENTS, TICKET_STATE, TIER_TOPICS, declared_topics, named
from engine.kafka import broker
from engine.kafka.admin import provision
from engine.kafka.security import aiokafka_options, security_for
from engine.settings import NODE_PORT_STEP, Settings
from tests.integration.harness import free_port

ASSIGNED = "ticketing_processor_assigned_partitions"
RESTORED = "ticketing_table_rows_restored_total"
RESTORED_IN_BULK = "ticketing_table_rows_restored_in_bulk_total"
READY_DEADLINE_SECONDS = 600.0
DRAIN_SECONDS = 120.0


def metric(port: int, name: str) -> float | None:
    """A processor's metric, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    return None


@dataclass
class Probes:
    """New tickets sent during the run: when each was acknowledged and routed."""

    sent: dict[bytes, float] = field(default_factory=dict)
    routed: dict[bytes, float] = field(default_factory=dict)

    def latencies_since(self, since: float) -> list[tuple[float, float]]:
        """(sent, seconds to routed) of the routed tickets sent from ``since`` on."""
        return [
            (sent, self.routed[key] - sent)
            for key, sent in self.sent.items()
            if sent >= since and key in self.routed
        ]

    def takeover(self, started: float, held_up: float) -> tuple[int, float, float]:
        """Of the routed tickets sent from ``started`` on: how many waited more than
        ``held_up`` seconds, the slowest wait, and when (seconds after ``started``) the
        last of those held up was routed (0: none was)."""
        after = self.latencies_since(started)
        late = [(sent, latency) for sent, latency in after if latency > held_up]
        slowest = max((latency for _, latency in after), default=0.0)
        resumed = max((sent + latency - started for sent, latency in late), default=0.0)
        return len(late), slowest, resumed

    def unrouted(self) -> int:
        return len(self.unrouted_keys())

    def unrouted_keys(self) -> list[str]:
        return [key.decode() for key in self.sent if key not in self.routed]


async def send_probes(
    producer: AIOKafkaProducer, topic: str, probes: Probes, rate: float, stop: asyncio.Event
) -> None:
    gap = 1.0 / rate
    while not stop.is_set():
        event = mail_event(
            f"takeover-{uuid.uuid4().hex}@acme.example", "Urgente",
            "la central está caída, no entran ni salen llamadas", None,
        )  # fmt: skip
        key = event.data.ticket_id.encode()
        await producer.send_and_wait(topic, to_json(event), key=key)
        probes.sent[key] = time.monotonic()
        await asyncio.sleep(gap)


async def read_routed(reader: object, probes: Probes, stop: asyncio.Event) -> None:
    while not stop.is_set():
        batches = await reader.getmany(timeout_ms=100)  # type: ignore[attr-defined]
        now = time.monotonic()
        for records in batches.values():
            for record in records:
                probes.routed.setdefault(record.key, now)


async def until(condition: object, deadline: float, *runs: ProcessorRun) -> bool:
    while time.monotonic() < deadline:
        for run in runs:
            run.supervise()
        if condition():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.25)
    return False


async def takeover(args: argparse.Namespace, settings: Settings, tmp: Path) -> None:
    bootstrap = settings.kafka_bootstrap
    partitions = settings.partitions
    prefix = "takeover."
    replication = min(3, args.nodes)
    provision(bootstrap, declared_topics(partitions, replication, prefix=prefix))
    began = time.monotonic()
    written = await fill(
        bootstrap, named(TICKET_STATE, prefix), stored_records("takeover", args.tickets, 24)
    )
    _, template, _ = template_state(24)
    print(
        f"{args.tickets:,} tickets: {written / MIB:,.0f} MiB of state records "
        f"({len(template):,} bytes each, replication factor {replication}) written in "
        f"{time.monotonic() - began:.1f}s",
        flush=True,
    )
    env_a = processor_env(bootstrap, prefix, "rocksdict", tmp / "a", "takeover")
    env_b = processor_env(bootstrap, prefix, "rocksdict", tmp / "b", "takeover")
    port_a = int(env_a["ENGINE_PROCESSOR_METRICS_PORT"])
    port_b = int(env_b["ENGINE_PROCESSOR_METRICS_PORT"])
    tiers = [named(topic, prefix) for topic in TIER_TOPICS.values()]
    reader = await reader_at_end(bootstrap, tiers, partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", **aiokafka_options(security_for(bootstrap))
    )
    await producer.start()
    probes = Probes()
    stop = asyncio.Event()
    stop_reading = asyncio.Event()
    reading = asyncio.create_task(read_routed(reader, probes, stop_reading))
    a = ProcessorRun(env_a, tmp / "a.log")
    b: ProcessorRun | None = None
    sending: asyncio.Task[None] | None = None
    try:
        started_a = time.monotonic()
        sending = asyncio.create_task(
            send_probes(producer, named(TICKET_EVENTS, prefix), probes, args.rate, stop)
        )
        if not await until(lambda: probes.routed, started_a + READY_DEADLINE_SECONDS, a):
            raise RuntimeError(f"processor A routed nothing within {READY_DEADLINE_SECONDS:.0f}s")
        first_routed = min(probes.routed.values())
        rss_a, _ = memory_of(a.process.pid)
        print(
            f"processor A, empty state directory: routed after {first_routed - started_a:.1f}s, "
            f"{metric(port_a, RESTORED_IN_BULK) or 0:,.0f} of "
            f"{metric(port_a, RESTORED) or 0:,.0f} records read in bulk, RSS {rss_a:.0f} MiB, "
            f"peak {max(a.peak_mib, memory_of(a.process.pid)[1]):.0f} MiB",
            flush=True,
        )
        await until(lambda: False, time.monotonic() + args.steady, a)
        load = os.getloadavg()
        started_b = time.monotonic()
        b = ProcessorRun(env_b, tmp / "b.log")
        joined = b
        assigned_at: list[float] = []

        def b_owns_partitions() -> bool:
            if not assigned_at and (metric(port_b, ASSIGNED) or 0) > 0:
                assigned_at.append(time.monotonic())
            return bool(assigned_at)

        await until(b_owns_partitions, started_b + READY_DEADLINE_SECONDS, a, joined)

        def settled() -> bool:
            now = time.monotonic()
            recent = probes.latencies_since(now - 5)
            waiting = [
                key
                for key, sent in probes.sent.items()
                if sent < now - args.held_up and key not in probes.routed
            ]
            return bool(assigned_at) and now - started_b > 10 and bool(recent) and not waiting

        await until(settled, started_b + READY_DEADLINE_SECONDS, a, joined)
        stop.set()
        await sending
        sending = None
        await until(lambda: probes.unrouted() == 0, time.monotonic() + DRAIN_SECONDS, a, joined)
        report(args, probes, started_b, assigned_at, port_a, port_b, joined, load)
    finally:
        stop.set()
        stop_reading.set()
        if sending is not None:
            sending.cancel()
        reading.cancel()
        for run in (a, b):
            if run is not None:
                run.stop()
        await producer.stop()
        await reader.stop()


def report(
    args: argparse.Namespace,
    probes: Probes,
    started_b: float,
    assigned_at: list[float],
    port_a: int,
    port_b: int,
    b: ProcessorRun,
    load: tuple[float, float, float],
) -> None:
    after = probes.latencies_since(started_b)
    held_up, slowest, resumed = probes.takeover(started_b, args.held_up)
    owned_a = metric(port_a, ASSIGNED)
    owned_b = metric(port_b, ASSIGNED)
    rss_b, peak_b = memory_of(b.process.pid)
    print(
        f"processor B joined (load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}): owned "
        f"partitions {assigned_at[0] - started_b:.1f}s after its start; partitions now "
        f"A {owned_a:.0f}, B {owned_b:.0f}; B read "
        f"{metric(port_b, RESTORED) or 0:,.0f} state records, "
        f"{metric(port_b, RESTORED_IN_BULK) or 0:,.0f} in bulk; RSS {rss_b:.0f} MiB, "
        f"peak {max(peak_b, b.peak_mib):.0f} MiB"
        + (f"; B exited {len(b.exits)} times ({b.exits})" if b.exits else ""),
        flush=True,
    )
    print(
        f"tickets sent from B's start: {len(after) + probes.unrouted():,}, held up more than "
        f"{args.held_up:.0f}s: {held_up:,}, never routed: {probes.unrouted()}; slowest "
        f"{slowest:.1f}s; **the last held-up ticket routed {resumed:.1f}s after B's start** "
        f"(target: within 60 s)",
        flush=True,
    )
    if probes.unrouted():
        print(f"never routed: {', '.join(probes.unrouted_keys()[:10])}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0, help="new tickets a second")
    parser.add_argument("--steady", type=float, default=10.0, help="seconds before B joins")
    parser.add_argument(
        "--held-up", type=float, default=1.0, help="a ticket routed later than this was held up"
    )
    parser.add_argument("--partitions", type=int, default=Settings().partitions)
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"tickets: {args.tickets:,}; nodes: {args.nodes}; partitions: {args.partitions}; "
        f"{os.cpu_count()} cores; load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-takeover-"))
    port = free_port(span=NODE_PORT_STEP * args.nodes + 1)
    settings = Settings(
        state_dir=tmp, broker_port=port, controller_port=port + 1,
        broker_nodes=args.nodes, partitions=args.partitions,
    )  # fmt: skip
    broker.start(settings)
    try:
        asyncio.run(takeover(args, settings, tmp))
    finally:
        broker.stop(settings)
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
