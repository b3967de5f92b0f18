"""Restart time and resident memory of the triage processor against the size of its table.

For each N of ``--tickets``: one local broker started for the run, ``tickets.state.v1``
(the processor table's changelog) filled with N ``ticket.updated`` records (one real
record, made by the engine's own triage, its ticket id varied), then ``engine processor``
started as ``engine up`` starts it, once per table store of ``--stores``
(``ENGINE_PROCESSOR_STORE``), twice each: the first start, and a restart after a clean
stop (what a persistent store is for; the memory store does the same work both times).

A start is timed from the process's start until the routed record of a new ticket's
``email.received`` event, sent right after the start, is on a ``tickets.routed.*.v1``
topic. A processor that exits on the way (its stall watchdog) is started again, as
``engine up`` does, and the time goes on. Memory is the process's VmRSS when it routed,
and the highest VmHWM (peak) of the processes it took. After each start a follow-up to a
stored ticket checks that the processor knows it (its state counts one event more).

A start that has not routed by ``--deadline`` seconds is reported as such, and that
store's restart is not measured.

    python -m bench.restart [--tickets 10000,1000000] [--stores memory,rocksdict]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from engine.contract import (
    EmailReceived,
    EmailReceivedData,
    TicketUpdated,
    parse_incoming,
    parse_record,
    to_json,
)
from engine.contract.identity import email_ticket_id, event_id
from engine.contract.topics import TICKET_EVENTS, TICKET_STATE, TIER_TOPICS, declared_topics, named
from engine.kafka import broker
from engine.kafka.admin import provision
from engine.kafka.security import aiokafka_options, security_for
from engine.rules.ruleset import load_ruleset
from engine.settings import Settings
from engine.triage.publications import state_record
from engine.triage.triage import triage
from tests.integration.harness import PROJECT_ROOT, free_port

DEADLINE_SECONDS = 900.0
STOP_TIMEOUT_SECONDS = 120.0
MAX_RESTARTS = 10
MIB = 1024 * 1024


def mail_event(message_id: str, subject: str, text: str, reply_to: str | None) -> EmailReceived:
    references = (reply_to,) if reply_to else ()
    return EmailReceived(
        event_id=event_id("email", message_id),
        occurred_at=datetime.now(UTC),
        source="bench",
        data=EmailReceivedData(
            ticket_id=email_ticket_id(subject, message_id, reply_to, references, ""),
            message_id=message_id, in_reply_to=reply_to, references=references,
            mail_from="c@acme.example", rcpt_to=("soporte@support.example.com",),
            from_address="c@acme.example", from_name="Cliente", subject=subject,
            text=text, text_truncated=False, new_text=text, automated_reason=None,
            date=None, attachments=(), peer="127.0.0.1", size_bytes=len(text),
        ),
    )  # fmt: skip


def template_state(history: int) -> tuple[str, bytes, int]:
    """A ticket's state as the processor writes it, after ``history`` mails of one thread
    (its recent event ids are most of a long-lived ticket's record). Returns the ticket id,
    the record and its event count."""
    ruleset = load_ruleset(None)
    root = f"restart-template-{uuid.uuid4().hex[:8]}@acme.example"
    ticket = None
    record = b""
    for n in range(history):
        mail = mail_event(
            root if n == 0 else f"reply-{n}-{root}",
            "Troncal" if n == 0 else "Re: Troncal",
            "la troncal SIP no registra desde ayer, seguimos sin poder llamar afuera",
            None if n == 0 else root,
        )
        incoming = parse_incoming(to_json(mail))
        now = datetime.now(UTC)
        outcome = triage(ticket, incoming, ruleset, now)
        assert outcome.ticket is not None, outcome
        ticket = outcome.ticket
        record = to_json(state_record(ticket, incoming.event_id, now, "engine.processor"))
    assert ticket is not None
    assert isinstance(parse_record(record), TicketUpdated)
    return ticket.ticket_id, record, ticket.event_count


def message_id_of(run: str, n: int) -> str:
    return f"restart-{run}-{n}@acme.example"


def stored_records(run: str, count: int, history: int) -> Iterator[tuple[bytes, bytes]]:
    template_id, template, _ = template_state(history)
    old = template_id.encode()
    for n in range(count):
        ticket = email_ticket_id("Troncal", message_id_of(run, n), None, (), "").encode()
        yield ticket, template.replace(old, ticket)


async def fill(bootstrap: str, topic: str, records: Iterator[tuple[bytes, bytes]]) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=20,
        max_batch_size=512 * 1024,
        **aiokafka_options(security_for(bootstrap)),
    )
    await producer.start()
    written = 0
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
            written += len(value)
        await producer.flush()
    finally:
        await producer.stop()
    return written


@dataclass(frozen=True)
class Start:
    seconds: float | None  # None: not routed by the deadline
    rss_mib: float
    peak_mib: float
    old_ticket_events: int | None
    load: tuple[float, float, float]
    exits: tuple[int, ...]


def memory_of(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM of a process, in MiB."""
    fields: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    fields[name] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


class ProcessorRun:
    """``engine processor`` in a process of its own, started again when it exits, as
    ``engine up`` does; its output goes to ``log``."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.exits: list[int] = []
        self.peak_mib = 0.0
        self.process = self._started()

    def _started(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "engine", "processor"],
                env=self.env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def supervise(self) -> None:
        code = self.process.poll()
        if code is None:
            self.peak_mib = max(self.peak_mib, memory_of(self.process.pid)[1])
            return
        self.exits.append(code)
        if len(self.exits) > MAX_RESTARTS:
            tail = self.log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the processor exited {len(self.exits)} times:\n{tail}")
        self.process = self._started()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def wait_for_key(
    consumer: AIOKafkaConsumer, key: bytes, run: ProcessorRun, deadline: float
) -> bytes:
    while time.monotonic() < deadline:
        run.supervise()
        batches = await consumer.getmany(timeout_ms=100)
        for records in batches.values():
            for record in records:
                if record.key == key and record.value is not None:
                    return bytes(record.value)
    raise TimeoutError(f"no record for {key.decode()}")


async def reader_at_end(bootstrap: str, topics: list[str], partitions: int) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        **aiokafka_options(security_for(bootstrap)),
    )
    await consumer.start()
    owned = [TopicPartition(topic, p) for topic in topics for p in range(partitions)]
    consumer.assign(owned)
    await consumer.seek_to_end(*owned)
    for tp in owned:
        await consumer.position(tp)  # resolved now, before anything is sent
    return consumer


async def timed_start(
    env: dict[str, str],
    log: Path,
    bootstrap: str,
    prefix: str,
    partitions: int,
    old: str,
    deadline_seconds: float,
) -> Start:
    tiers = [named(topic, prefix) for topic in TIER_TOPICS.values()]
    routed = await reader_at_end(bootstrap, tiers, partitions)
    states = await reader_at_end(bootstrap, [named(TICKET_STATE, prefix)], partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", **aiokafka_options(security_for(bootstrap))
    )
    await producer.start()
    probe = mail_event(
        f"restart-probe-{uuid.uuid4().hex}@acme.example", "Urgente",
        "la central está caída, no entran ni salen llamadas", None,
    )  # fmt: skip
    events_topic = named(TICKET_EVENTS, prefix)
    started = time.monotonic()
    processor = ProcessorRun(env, log)
    try:
        await producer.send_and_wait(
            events_topic, to_json(probe), key=probe.data.ticket_id.encode()
        )
        deadline = started + deadline_seconds
        try:
            await wait_for_key(routed, probe.data.ticket_id.encode(), processor, deadline)
        except TimeoutError:
            rss, peak = memory_of(processor.process.pid)
            peak = max(peak, processor.peak_mib)
            return Start(None, rss, peak, None, os.getloadavg(), tuple(processor.exits))
        seconds = time.monotonic() - started
        rss, peak = memory_of(processor.process.pid)
        peak = max(peak, processor.peak_mib)  # of every process it took
        load = os.getloadavg()
        # A follow-up to a stored ticket: known, its state counts one more event.
        follow_up = mail_event(
            f"restart-follow-up-{uuid.uuid4().hex}@acme.example", "Re: Troncal",
            "sigue sin registrar la troncal", old,
        )  # fmt: skip
        key = follow_up.data.ticket_id.encode()
        await producer.send_and_wait(events_topic, to_json(follow_up), key=key)
        value = await wait_for_key(states, key, processor, time.monotonic() + 120)
        state = parse_record(value)
        events = state.data.ticket.event_count if isinstance(state, TicketUpdated) else None
        return Start(seconds, rss, peak, events, load, tuple(processor.exits))
    finally:
        processor.stop()
        await producer.stop()
        await routed.stop()
        await states.stop()


def processor_env(
    bootstrap: str, prefix: str, store: str, state_dir: Path, app_id: str
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ENGINE_")}
    env.update(
        ENGINE_BOOTSTRAP_SERVERS=bootstrap,
        ENGINE_TOPIC_PREFIX=prefix,
        ENGINE_STATE_DIR=str(state_dir),
        ENGINE_APP_ID=app_id,
        ENGINE_PROCESSOR_STORE=store,
        ENGINE_PROCESSOR_METRICS_PORT=str(free_port()),
        ENGINE_LOG_LEVEL=os.environ.get("BENCH_LOGLEVEL", "WARN"),
        PYTHONUNBUFFERED="1",
    )
    return env


def directory_mib(path: Path) -> float:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0
    return total / MIB


def bench_size(
    settings: Settings, tmp: Path, count: int, stores: list[str], history: int, deadline: float
) -> None:
    bootstrap = settings.kafka_bootstrap
    partitions = settings.partitions
    prefix = f"restart-{count}."
    provision(bootstrap, declared_topics(partitions, 1, prefix=prefix))
    run_id = uuid.uuid4().hex[:8]
    _, template, stored_events = template_state(history)
    began = time.monotonic()
    written = asyncio.run(
        fill(bootstrap, named(TICKET_STATE, prefix), stored_records(run_id, count, history))
    )
    print(
        f"\n{count:,} tickets: {written / MIB:,.0f} MiB of state records "
        f"({len(template):,} bytes each) written in {time.monotonic() - began:.1f}s",
        flush=True,
    )
    followed = 0
    for store in stores:
        state_dir = tmp / f"{store}-{count}"
        env = processor_env(bootstrap, prefix, store, state_dir, f"restart-{store}-{count}")
        for label in ("first start", "restart"):
            log = tmp / f"{store}-{count}.log"
            old = message_id_of(run_id, followed)  # a stored ticket no start has seen yet
            followed += 1
            start = asyncio.run(timed_start(env, log, bootstrap, prefix, partitions, old, deadline))
            exits = (
                f"; exited {len(start.exits)} times on the way (status "
                f"{', '.join(map(str, start.exits))}) and was started again"
                if start.exits
                else ""
            )
            load = f"load {start.load[0]:.2f} {start.load[1]:.2f} {start.load[2]:.2f}"
            if start.seconds is None:
                print(
                    f"  {store:<9} {label:<11}: NOT ROUTED within {deadline:.0f}s, "
                    f"RSS {start.rss_mib:6.0f} MiB, peak {start.peak_mib:6.0f} MiB; {load}"
                    f"{exits}; its restart is not measured",
                    flush=True,
                )
                break
            found = (
                "old ticket known"
                if start.old_ticket_events == stored_events + 1
                else f"OLD TICKET NOT KNOWN (event count {start.old_ticket_events})"
            )
            print(
                f"  {store:<9} {label:<11}: routed after {start.seconds:6.1f}s, "
                f"RSS {start.rss_mib:6.0f} MiB, peak {start.peak_mib:6.0f} MiB, "
                f"local store {directory_mib(state_dir / 'processor'):6.0f} MiB, "
                f"{found}; {load}{exits}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", default="10000,1000000")
    parser.add_argument("--stores", default="memory,rocksdict")
    parser.add_argument("--partitions", type=int, default=Settings().partitions)
    parser.add_argument(
        "--history", type=int, default=24, help="mails in each stored ticket's thread"
    )
    parser.add_argument(
        "--deadline", type=float, default=DEADLINE_SECONDS, help="seconds a start may take"
    )
    args = parser.parse_args()
    counts = [int(part) for part in args.tickets.split(",")]
    stores = [part for part in args.stores.split(",") if part]
    load = os.getloadavg()
    print(
        f"tickets: {', '.join(f'{n:,}' for n in counts)}; stores: {', '.join(stores)}; "
        f"partitions: {args.partitions}; one local broker; {os.cpu_count()} cores; "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    settings = Settings(
        state_dir=tmp, broker_port=free_port(), controller_port=free_port(),
        partitions=args.partitions,
    )  # fmt: skip
    broker.start(settings)
    try:
        for count in counts:
            bench_size(settings, tmp, count, stores, args.history, args.deadline)
    finally:
        broker.stop(settings)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
