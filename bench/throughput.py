"""Throughput of the processing path, three ways, over the same events in one run:

  (a) a raw aiokafka consume-and-produce pass-through,
  (b) a faust-streaming agent that only forwards,
  (c) the engine's triage processor (classify, route, table, decision + tier topics).

Each runs in its own process against one local broker started for the run, reads the same
N ``email.received`` events from the beginning, and is timed from its first record to the
N-th record's output acknowledged. Prints events/s and the ratios b/a and c/a.

The events carry the labelled corpus's subjects and bodies (tests/rules/labelled.yaml),
each with its own reference number, so no two texts are alike, as in a real inbox: the
rules cannot answer from what they read a moment ago. ``--profile`` runs (c) under cProfile
and prints its top entries by own time.

    python -m bench.throughput [--events 5000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.classify_rules import messages
from engine.contract import EmailReceived, EmailReceivedData, to_json
from engine.contract.identity import email_ticket_id, event_id
from engine.contract.topics import TICKET_EVENTS, TopicSpec, declared_topics
from engine.kafka import broker
from engine.kafka.admin import provision
from engine.kafka.security import aiokafka_options, faust_options, security_for
from engine.settings import Settings
from tests.integration.harness import free_port

SOURCE = "bench.source.v1"
SINK_RAW = "bench.sink.raw.v1"
SINK_FAUST = "bench.sink.faust.v1"
PROFILE_ENTRIES = 25


def labelled_texts() -> list[tuple[str, str]]:
    """The labelled messages' subjects and bodies."""
    return [(message.subject or "Consulta", message.body) for message in messages()]


def events(count: int) -> list[tuple[bytes, bytes]]:
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:8]
    made = []
    texts = labelled_texts()
    for n in range(count):
        subject, text = texts[n % len(texts)]
        body = f"{text}\n\nReferencia {run}-{n}"
        message_id = f"bench-{run}-{n}@acme.example"
        ticket = email_ticket_id(subject, message_id, None, (), "")
        event = EmailReceived(
            event_id=event_id("email", message_id),
            occurred_at=now,
            source="bench",
            data=EmailReceivedData(
                ticket_id=ticket, message_id=message_id, in_reply_to=None, references=(),
                mail_from="c@acme.example", rcpt_to=("soporte@support.example.com",),
                from_address="c@acme.example", from_name="Cliente", subject=subject,
                text=body, text_truncated=False, new_text=body, automated_reason=None,
                date=None, attachments=(),
                peer="127.0.0.1", size_bytes=len(body.encode()),
            ),
        )  # fmt: skip
        made.append((ticket.encode(), to_json(event)))
    return made


async def produce(bootstrap: str, topics: list[str], records: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        linger_ms=5,
        **aiokafka_options(security_for(bootstrap)),
    )
    await producer.start()
    try:
        for topic in topics:
            for key, value in records:
                await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def raw_pass_through(bootstrap: str, count: int) -> float:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        SOURCE, bootstrap_servers=bootstrap, group_id=f"bench-raw-{os.getpid()}",
        auto_offset_reset="earliest", enable_auto_commit=False,
        **aiokafka_options(security_for(bootstrap)),
    )  # fmt: skip
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        **aiokafka_options(security_for(bootstrap)),
    )
    await consumer.start()
    await producer.start()
    seen = 0
    try:
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    if seen == 0:
                        start_clocks()
                    await producer.send(SINK_RAW, record.value, key=record.key)
                    seen += 1
            await producer.flush()
            await consumer.commit()
        return time.perf_counter() - _started[0]
    finally:
        await consumer.stop()
        await producer.stop()


def faust_forward(bootstrap: str, count: int, partitions: int, state_dir: str) -> None:
    import faust

    app = faust.App(
        f"bench-faust-{os.getpid()}", broker=f"kafka://{bootstrap}", store="memory://",
        web_enabled=False, topic_partitions=partitions, consumer_auto_offset_reset="earliest",
        producer_acks=-1, datadir=os.path.join(state_dir, "faust-forward"),
        **faust_options(security_for(bootstrap)),
    )  # fmt: skip
    source = app.topic(SOURCE, key_type=bytes, value_type=bytes, value_serializer="raw")
    sink = app.topic(SINK_FAUST, key_type=bytes, value_type=bytes, value_serializer="raw")
    state = {"seen": 0}

    @app.agent(source, concurrency=1)
    async def forward(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            if state["seen"] == 0:
                start_clocks()
            await sink.send(key=event.key, value=event.message.value)
            state["seen"] += 1
            if state["seen"] == count:
                await app.producer.flush()
                report(time.perf_counter() - _started[0])

    run_faust(app)


def engine_processor(
    bootstrap: str, count: int, partitions: int, state_dir: str, profile: bool
) -> None:
    from engine.triage.processor import build_processor

    settings = Settings(
        bootstrap_servers=bootstrap, state_dir=Path(state_dir), partitions=partitions,
        app_id=f"bench-engine-{os.getpid()}",
    )  # fmt: skip
    processor = build_processor(settings)
    handle_batch = processor.handle_batch
    state = {"seen": 0}

    profiler = cProfile.Profile()

    async def counted(values: Sequence[bytes | None]) -> None:
        if state["seen"] == 0:
            start_clocks()
            if profile:
                profiler.enable()
        await handle_batch(values)
        state["seen"] += len(values)
        if state["seen"] >= count:
            await processor.app.producer.flush()
            seconds = time.perf_counter() - _started[0]
            if profile:
                profiler.disable()
                print_profile(profiler)
            report(seconds)

    processor.handle_batch = counted  # type: ignore[method-assign]
    run_faust(processor.app)


def print_profile(profiler: cProfile.Profile) -> None:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(
        os.environ.get("BENCH_PROFILE_SORT", "tottime")
    ).print_stats(PROFILE_ENTRIES)
    os.write(2, out.getvalue().encode())


_started = [0.0, 0.0]


def start_clocks() -> None:
    """From the first record on: wall time, and this process's own CPU time."""
    _started[:] = [time.perf_counter(), time.process_time()]


def report(seconds: float) -> None:
    cpu = time.process_time() - _started[1]
    # faust redirects sys.stdout to its logger: write to the real standard output.
    os.write(1, (json.dumps({"seconds": seconds, "cpu": cpu}) + "\n").encode())
    os._exit(0)  # the measurement is taken; no need for faust's orderly shutdown


def run_faust(app: object) -> None:
    import faust

    worker = faust.Worker(app, loglevel=os.environ.get("BENCH_LOGLEVEL", "ERROR"), quiet=True)  # type: ignore[arg-type]
    worker.spinner = None
    worker.execute_from_commandline()


def timed_subprocess(*args: str) -> tuple[float, float]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.throughput", *args],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if "--profile" in args:
        print(result.stderr[result.stderr.find("   Ordered by") :], flush=True)
    for line in result.stdout.splitlines():
        if line.startswith('{"seconds"'):
            figures = json.loads(line)
            return float(figures["seconds"]), float(figures["cpu"])
    raise RuntimeError(f"{args[0]} gave no figure:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", nargs="?", default="compare")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--bootstrap", default="")
    parser.add_argument("--state-dir", default="")
    parser.add_argument("--profile", action="store_true", help="profile (c); top entries")
    args = parser.parse_args()

    if args.role == "raw":
        report(asyncio.run(raw_pass_through(args.bootstrap, args.events)))
    elif args.role == "faust":
        faust_forward(args.bootstrap, args.events, args.partitions, args.state_dir)
    elif args.role == "engine":
        engine_processor(args.bootstrap, args.events, args.partitions, args.state_dir, args.profile)
    else:
        compare(args.events, args.partitions, args.profile)


def compare(count: int, partitions: int, profile: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        settings = Settings(
            state_dir=Path(tmp), broker_port=free_port(), controller_port=free_port(),
            partitions=partitions,
        )  # fmt: skip
        broker.start(settings)
        try:
            bootstrap = settings.kafka_bootstrap
            bench_topics = [
                TopicSpec(name, "benchmark", (EmailReceived,), partitions, 1)
                for name in (SOURCE, SINK_RAW, SINK_FAUST)
            ]
            provision(bootstrap, [*declared_topics(partitions, 1), *bench_topics])
            asyncio.run(produce(bootstrap, [SOURCE, TICKET_EVENTS], events(count)))
            common = ["--events", str(count), "--partitions", str(partitions),
                      "--bootstrap", bootstrap, "--state-dir", tmp]  # fmt: skip
            raw = timed_subprocess("raw", *common)
            forward = timed_subprocess("faust", *common)
            profiled = ["--profile"] if profile else []
            engine = timed_subprocess("engine", *common, *profiled)
        finally:
            broker.stop(settings)
    figures = {"raw": raw, "faust": forward, "engine": engine}
    rate = {name: count / seconds for name, (seconds, _) in figures.items()}
    cpu_ms = {name: cpu * 1000 / count for name, (_, cpu) in figures.items()}
    print(f"events: {count}, partitions: {partitions}, one local broker, 2 cores, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    labels = {
        "raw": "(a) raw aiokafka pass-through",
        "faust": "(b) faust forwarding agent",
        "engine": "(c) engine triage processor",
    }
    for name, label in labels.items():
        print(f"{label:30}: {rate[name]:9.0f} events/s  ({figures[name][0]:.2f}s), "
              f"{cpu_ms[name]:.3f} ms of its own CPU an event")  # fmt: skip
    print(f"ratio b/a: {rate['faust'] / rate['raw']:.3f}")
    print(f"ratio c/a: {rate['engine'] / rate['raw']:.3f}")


if __name__ == "__main__":
    main()
