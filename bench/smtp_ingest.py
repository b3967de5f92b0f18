"""Accepted mails per second and p99 time to ``250``: the engine's SMTP ingestor (every
250 after Kafka's ack) against a bare aiosmtpd sink that stores nothing, in one run, same
client, same messages. Target (issue 4): at least half the bare sink's rate.

    python -m bench.smtp_ingest [--mails 2000] [--clients 8]
"""

from __future__ import annotations

import argparse
import os
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

from engine import broker
from engine.kafka_admin import provision
from engine.settings import Settings
from engine.topics import declared_topics
from tests.integration.harness import free_port, port_open, wait_until

SINK = """
import asyncio, sys
from aiosmtpd.smtp import SMTP
class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 OK"
async def main():
    loop = asyncio.get_running_loop()
    await loop.create_server(lambda: SMTP(Sink(), loop=loop), "127.0.0.1", int(sys.argv[1]))
    await asyncio.Event().wait()
asyncio.run(main())
"""


def mails(count: int) -> list[bytes]:
    made = []
    for n in range(count):
        message = EmailMessage()
        message["From"] = f"cliente{n % 50}@acme.example"
        message["To"] = "soporte@support.example.com"
        message["Subject"] = "Urgente: central caída" if n % 2 else "How do I add an extension?"
        message["Message-ID"] = f"<bench-{os.getpid()}-{n}@acme.example>"
        message.set_content("La central está caída, no entran ni salen llamadas.\n" * 20)
        made.append(message.as_bytes(policy=SMTP_POLICY))
    return made


def run_client(port: int, batch: list[bytes]) -> list[float]:
    latencies = []
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        smtp.ehlo()
        for raw in batch:
            smtp.mail("cliente@acme.example")
            smtp.rcpt("soporte@support.example.com")
            started = time.perf_counter()
            code, reply = smtp.data(raw)
            latencies.append(time.perf_counter() - started)
            if code != 250:
                raise RuntimeError(f"{code} {reply!r}")
    return latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    port: int, messages: list[bytes], clients: int, server_pids: list[int]
) -> tuple[float, float, float]:
    """(mails/s, p99 seconds to 250, server CPU ms per mail)."""
    batches = [messages[i::clients] for i in range(clients)]
    cpu_before = sum(cpu_seconds(pid) for pid in server_pids)
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [x for part in pool.map(lambda b: run_client(port, b), batches) for x in part]
    elapsed = time.perf_counter() - started
    cpu = sum(cpu_seconds(pid) for pid in server_pids) - cpu_before
    p99 = statistics.quantiles(latencies, n=100)[98]
    return len(messages) / elapsed, p99, cpu / len(messages) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-smtp-") as tmp:
        settings = Settings(
            state_dir=Path(tmp), broker_port=free_port(), controller_port=free_port()
        )
        broker.start(settings)
        sink_port, smtp_port = free_port(), free_port()
        env = {
            **os.environ, "ENGINE_BOOTSTRAP_SERVERS": settings.kafka_bootstrap,
            "ENGINE_STATE_DIR": tmp, "ENGINE_SMTP_PORT": str(smtp_port),
            "ENGINE_SMTP_METRICS_PORT": str(free_port()),
            "ENGINE_SMTP_SENDER_LIMIT_PER_MINUTE": str(10 * args.mails),
        }  # fmt: skip
        processes = []
        try:
            provision(settings.kafka_bootstrap, declared_topics())
            processes.append(subprocess.Popen([sys.executable, "-c", SINK, str(sink_port)]))
            processes.append(subprocess.Popen([sys.executable, "-m", "engine", "smtp"], env=env))
            wait_until(lambda: port_open(sink_port) and port_open(smtp_port), 60, "both servers")
            run_client(smtp_port, mails(20))  # connect the producer before timing
            sink, engine = processes
            sink_rate, sink_p99, sink_cpu = measure(
                sink_port, mails(args.mails), args.clients, [sink.pid]
            )
            engine_rate, engine_p99, engine_cpu = measure(
                smtp_port, mails(args.mails), args.clients, [engine.pid]
            )
        finally:
            for process in processes:
                process.terminate()
                process.wait(10)
            broker.stop(settings)
    print(f"mails: {args.mails} of {len(mails(1)[0])} bytes, {args.clients} concurrent clients")
    for name, rate, p99, cpu in (
        ("bare aiosmtpd sink  ", sink_rate, sink_p99, sink_cpu),
        ("engine SMTP ingestor", engine_rate, engine_p99, engine_cpu),
    ):
        print(
            f"{name} : {rate:7.0f} mails/s, p99 to 250 {p99 * 1000:6.1f} ms, "
            f"server CPU {cpu:.2f} ms/mail"
        )
    print(f"ratio engine/sink: {engine_rate / sink_rate:.3f} (target >= 0.5)")


if __name__ == "__main__":
    main()
