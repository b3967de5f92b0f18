"""Throughput of the processing path, three ways, over the same events in one run:

  (a) a raw aiokafka consume-and-produce pass-through,
  (b) a faust-streaming agent that only forwards,
  (c) the engine's triage processor (classify, route, table, decision + tier topics).

Each runs in its own process against one local broker started for the run, reads the same
N ``email.received`` events from the beginning, and is timed from its first record to the
N-th record's output acknowledged. Prints events/s and the ratios b/a and c/a.

    python -m bench.throughput [--events 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from engine.contract import EmailReceived, EmailReceivedData, to_json
from engine.contract.identity import email_ticket_id, event_id
from engine.contract.topics import TICKET_EVENTS, TopicSpec, declared_topics
from engine.kafka import broker
from engine.kafka.admin import provision
from engine.settings import Settings
from tests.integration.harness import free_port

SOURCE = "bench.source.v1"
SINK_RAW = "bench.sink.raw.v1"
SINK_FAUST = "bench.sink.faust.v1"
BODIES = [
    ("Urgente", "la central está caída, no entran ni salen llamadas"),
    ("Question", "Hello, how do I add an extension to our PBX?"),
    ("Troncal", "la troncal SIP no registra desde ayer"),
    ("Consulta", "quisiera saber cómo configurar el IVR para el horario nocturno"),
]


def events(count: int) -> list[tuple[bytes, bytes]]:
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:8]
    made = []
    for n in range(count):
        subject, body = BODIES[n % len(BODIES)]
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
                text=body * 5, text_truncated=False, new_text=body * 5, automated_reason=None,
                date=None, attachments=(),
                peer="127.0.0.1", size_bytes=len(body) * 5,
            ),
        )  # fmt: skip
        made.append((ticket.encode(), to_json(event)))
    return made


async def produce(bootstrap: str, topics: list[str], records: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
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
    )  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await consumer.start()
    await producer.start()
    seen, started = 0, 0.0
    try:
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    if seen == 0:
                        started = time.perf_counter()
                    await producer.send(SINK_RAW, record.value, key=record.key)
                    seen += 1
            await producer.flush()
            await consumer.commit()
        return time.perf_counter() - started
    finally:
        await consumer.stop()
        await producer.stop()


def faust_forward(bootstrap: str, count: int, partitions: int) -> None:
    import faust

    app = faust.App(
        f"bench-faust-{os.getpid()}", broker=f"kafka://{bootstrap}", store="memory://",
        web_enabled=False, topic_partitions=partitions, consumer_auto_offset_reset="earliest",
        producer_acks=-1,
    )  # fmt: skip
    source = app.topic(SOURCE, key_type=bytes, value_type=bytes, value_serializer="raw")
    sink = app.topic(SINK_FAUST, key_type=bytes, value_type=bytes, value_serializer="raw")
    state = {"seen": 0, "started": 0.0}

    @app.agent(source, concurrency=1)
    async def forward(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            if state["seen"] == 0:
                state["started"] = time.perf_counter()
            await sink.send(key=event.key, value=event.message.value)
            state["seen"] += 1
            if state["seen"] == count:
                await app.producer.flush()
                report(time.perf_counter() - state["started"])

    run_faust(app)


def engine_processor(bootstrap: str, count: int, partitions: int, state_dir: str) -> None:
    from engine.triage.processor import build_processor

    settings = Settings(
        bootstrap_servers=bootstrap, state_dir=Path(state_dir), partitions=partitions,
        app_id=f"bench-engine-{os.getpid()}",
    )  # fmt: skip
    processor = build_processor(settings)
    handle_batch = processor.handle_batch
    state = {"seen": 0, "started": 0.0}

    async def counted(values: list[bytes]) -> None:
        if state["seen"] == 0:
            state["started"] = time.perf_counter()
        await handle_batch(values)
        state["seen"] += len(values)
        if state["seen"] >= count:
            await processor.app.producer.flush()
            report(time.perf_counter() - state["started"])

    processor.handle_batch = counted  # type: ignore[method-assign]
    run_faust(processor.app)


def report(seconds: float) -> None:
    # faust redirects sys.stdout to its logger: write to the real standard output.
    os.write(1, (json.dumps({"seconds": seconds}) + "\n").encode())
    os._exit(0)  # the measurement is taken; no need for faust's orderly shutdown


def run_faust(app: object) -> None:
    import faust

    worker = faust.Worker(app, loglevel=os.environ.get("BENCH_LOGLEVEL", "ERROR"), quiet=True)  # type: ignore[arg-type]
    worker.spinner = None
    worker.execute_from_commandline()


def timed_subprocess(*args: str) -> float:
    result = subprocess.run(
        [sys.executable, "-m", "bench.throughput", *args],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    for line in result.stdout.splitlines():
        if line.startswith('{"seconds"'):
            return float(json.loads(line)["seconds"])
    raise RuntimeError(f"{args[0]} gave no figure:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", nargs="?", default="compare")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--bootstrap", default="")
    parser.add_argument("--state-dir", default="")
    args = parser.parse_args()

    if args.role == "raw":
        report(asyncio.run(raw_pass_through(args.bootstrap, args.events)))
    elif args.role == "faust":
        faust_forward(args.bootstrap, args.events, args.partitions)
    elif args.role == "engine":
        engine_processor(args.bootstrap, args.events, args.partitions, args.state_dir)
    else:
        compare(args.events, args.partitions)


def compare(count: int, partitions: int) -> None:
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
                      "--bootstrap", bootstrap]  # fmt: skip
            raw = timed_subprocess("raw", *common)
            forward = timed_subprocess("faust", *common)
            engine = timed_subprocess("engine", *common, "--state-dir", tmp)
        finally:
            broker.stop(settings)
    rate = {name: count / seconds for name, seconds in
            (("raw", raw), ("faust", forward), ("engine", engine))}  # fmt: skip
    print(f"events: {count}, partitions: {partitions}, one local broker, 2 cores")
    print(f"(a) raw aiokafka pass-through : {rate['raw']:9.0f} events/s  ({raw:.2f}s)")
    print(f"(b) faust forwarding agent    : {rate['faust']:9.0f} events/s  ({forward:.2f}s)")
    print(f"(c) engine triage processor   : {rate['engine']:9.0f} events/s  ({engine:.2f}s)")
    print(f"ratio b/a: {rate['faust'] / rate['raw']:.3f}")
    print(f"ratio c/a: {rate['engine'] / rate['raw']:.3f}")


if __name__ == "__main__":
    main()
